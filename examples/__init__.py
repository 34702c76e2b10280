"""Worked examples of fiper on environments written without fiper in mind."""
