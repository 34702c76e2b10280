"""Small planar/rotation helpers shared by tasks, shifts and experts (numpy only)."""

from __future__ import annotations

import math

import numpy as np


def wrap_angle(a: float | np.ndarray) -> float | np.ndarray:
    """Angle(s) wrapped to [-pi, pi)."""
    return (np.asarray(a) + np.pi) % (2 * np.pi) - np.pi


def yaw_quat(yaw: float) -> np.ndarray:
    """Unit quaternion (w, x, y, z) of a rotation by ``yaw`` about the world z axis."""
    return np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])


def quat_yaw(q: np.ndarray) -> float:
    """Heading (rotation about z) of a quaternion (w, x, y, z)."""
    w, x, y, z = q.tolist() if isinstance(q, np.ndarray) else q
    return math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def rot2(theta: float) -> np.ndarray:
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[c, -s], [s, c]])


def look_at_quat(pos: np.ndarray, target: np.ndarray, up: np.ndarray) -> np.ndarray:
    """Quaternion (w, x, y, z) of a MuJoCo camera at ``pos`` looking at ``target``.

    MuJoCo cameras look along their local -z with local +y up; ``up`` picks the roll.
    """
    forward = np.asarray(target, float) - np.asarray(pos, float)
    forward /= np.linalg.norm(forward)
    x = np.cross(forward, up)
    if np.linalg.norm(x) < 1e-9:
        raise ValueError("camera 'up' is parallel to the viewing direction; pick another up vector")
    x /= np.linalg.norm(x)
    z = -forward
    y = np.cross(z, x)
    return mat_to_quat(np.stack([x, y, z], axis=1))


def mat_to_quat(m: np.ndarray) -> np.ndarray:
    """Quaternion (w, x, y, z) of a 3x3 rotation matrix (Shepperd's method, w >= 0)."""
    t = np.trace(m)
    if t > 0:
        s = np.sqrt(t + 1.0) * 2
        q = np.array([0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s])
    else:
        i = int(np.argmax(np.diag(m)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = np.sqrt(1.0 + m[i, i] - m[j, j] - m[k, k]) * 2
        q = np.empty(4)
        q[0] = (m[k, j] - m[j, k]) / s
        q[1 + i] = 0.25 * s
        q[1 + j] = (m[j, i] + m[i, j]) / s
        q[1 + k] = (m[k, i] + m[i, k]) / s
    q /= np.linalg.norm(q)
    return q if q[0] >= 0 else -q


def point_rect_distance(p: np.ndarray, center: np.ndarray, half: np.ndarray, theta: float) -> float:
    """Distance from point ``p`` to an oriented rectangle (0 inside)."""
    local = rot2(theta).T @ (np.asarray(p, float) - center)
    d = np.maximum(np.abs(local) - half, 0.0)
    return float(np.hypot(d[0], d[1]))


def segment_point_distance(a: np.ndarray, b: np.ndarray, p: np.ndarray) -> float:
    """Distance from ``p`` to the segment a-b."""
    ab = b - a
    denom = float(ab @ ab)
    u = 0.0 if denom < 1e-12 else float(np.clip((p - a) @ ab / denom, 0.0, 1.0))
    return float(np.linalg.norm(a + u * ab - p))
