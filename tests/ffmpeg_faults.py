"""An ffmpeg that fails its video writes as some builds and encoders do, imageio raising nothing: set as IMAGEIO_FFMPEG_EXE."""

from __future__ import annotations

from pathlib import Path

# what the fake does to a write (ffmpeg reading frames on stdin, `-i -`): every other call goes to the real ffmpeg
FAULTS = {
    "no encoder": 'args=(); for a in "$@"; do [ "$prev" = -vcodec ] && [ "$a" != rawvideo ] && a=nonexistent; '
                  'args+=("$a"); prev=$a; done; set -- "${args[@]}"',  # an ffmpeg without the encoder: no file
    "empty": 'cat > /dev/null; : > "${@: -1}"; exit 0',  # an encoder that fails after creating its file
    "short": 'set -- "${@:1:$#-1}" -frames:v 2 "${@: -1}"',  # an encoder that stops after two frames
}


def failing_ffmpeg(folder: Path, fault: str, only_size: str | None = None) -> str:
    """The path of an executable ffmpeg with ``fault`` on its writes (of frames of ``only_size``, 'WxH', when given)."""
    from imageio_ffmpeg import get_ffmpeg_exe

    real = get_ffmpeg_exe()
    size = f'[[ " $* " == *" -s {only_size} "* ]] && ' if only_size else ""
    script = Path(folder) / f"ffmpeg_{fault.replace(' ', '_')}"
    script.write_text(f'#!/bin/bash\nif [[ " $* " == *" -i - "* ]] && {size}true; then {FAULTS[fault]}; fi\nexec {real} "$@"\n')
    script.chmod(0o755)
    return str(script)
