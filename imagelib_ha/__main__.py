"""``python -m imagelib_ha <command>``: operator commands outside Pulumi (``doctor``)."""

from __future__ import annotations

import sys

from imagelib_ha import doctor

COMMANDS = {"doctor": doctor.main}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS:
        print(f"usage: python -m imagelib_ha {{{','.join(COMMANDS)}}} [options]", file=sys.stderr)
        return 2
    return COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
