"""The fiper MuJoCo tasks."""
