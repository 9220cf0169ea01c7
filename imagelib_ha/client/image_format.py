"""Does a local image file hold what its ``disk_format`` says? Asked of the format inspector Glance itself
uses (``oslo_utils.imageutils.format_inspector``), before anything is uploaded.

Glance inspects uploads the same way and, with ``[image_format] require_image_format_match``, refuses a
mismatch only after the bytes were sent; its safety checks (a qcow2 with a backing or data file, for
example) refuse an image too. Checking first turns both into a message at preview.
"""

from __future__ import annotations

from oslo_utils.imageutils import format_inspector

# disk_format values the inspector can recognise; others (ami, ari, aki, ploop) are not checked.
INSPECTABLE = frozenset({"raw", "qcow2", "vhd", "vhdx", "vmdk", "vdi", "iso"})
# What the inspector may report for a declared format, besides the format itself: a GPT-partitioned
# disk is a raw image (Glance accepts it as raw), and an ISO may carry a GPT or an MBR (hybrid ISO).
ALSO_ACCEPTED = {"raw": frozenset({"gpt"}), "iso": frozenset({"gpt", "raw"})}


def format_problem(path: str, disk_format: str) -> str | None:
    """Why the file at ``path`` is not a valid ``disk_format`` image as Glance would see it, or None.

    Raises ``OSError`` when the file cannot be read.
    """
    if disk_format not in INSPECTABLE:
        return None
    try:
        inspector = format_inspector.detect_file_format(path)
    except format_inspector.ImageFormatError as exc:
        return f"its format cannot be told apart (the inspector says: {exc})"
    detected = str(inspector) if inspector is not None else "raw"
    if detected != disk_format and detected not in ALSO_ACCEPTED.get(disk_format, frozenset()):
        return (f"holds a {detected} image, not {disk_format}: set diskFormat to {detected}, or convert "
                f"the file (qemu-img convert -O {disk_format})")
    if inspector is not None:
        try:
            inspector.safety_check()
        except format_inspector.SafetyCheckFailed as exc:
            return f"fails Glance's safety checks for {detected} images ({exc}): Glance would refuse it"
    return None
