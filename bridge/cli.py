"""The `n2m` console script: one entry point, subcommands imported lazily.

Each subcommand lives in its own world and is imported only when it runs, so a producer who
installed only the runtime never imports torch or Qt by running `n2m generate`.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Subcommand:
    target: str  # "module:function"; the function takes argv (list[str]) and returns an exit code
    summary: str
    needs: str  # the extra that provides it, for the error when it is missing


SUBCOMMANDS: dict[str, Subcommand] = {
    "generate": Subcommand("n2m.bridge.generate:main", "generate clips from a prompt", "runtime"),
    "serve": Subcommand("n2m.bridge.serve:main", "run the OSC daemon that keeps the cascade loaded", "runtime"),
    "vary": Subcommand("n2m.bridge.edit:main", "variations of a clip you have (--strength)", "runtime"),
    "extend": Subcommand("n2m.bridge.edit:main_extend", "a clip you have, continued by N bars", "runtime"),
    "inpaint": Subcommand("n2m.bridge.edit:main_inpaint", "bars A-B of a clip you have, made anew", "runtime"),
    "clips": Subcommand("n2m.bridge.library:main", "list, search and export the clip library", "runtime"),
    "doctor": Subcommand("n2m.bridge.doctor:main", "check what is installed and usable", "runtime"),
    "panel": Subcommand("n2m.plugin.app:main", "open the Qt panel", "panel"),
    "corpus": Subcommand("n2m.exporter.corpus.cli:main", "build, verify and describe the training corpus", "train"),
    "train": Subcommand("n2m.exporter.train:main", "train a cascade stage from a config", "train"),
    "export": Subcommand("n2m.exporter.export:main", "export a checkpoint to an ONNX cascade", "train"),
    "eval": Subcommand("n2m.exporter.evaluate:main", "evaluate a cascade on the evaluation prompt set", "train"),
    "bench": Subcommand("n2m.exporter.bench:main", "benchmark corpus, engine and export variants", "train"),
}


def usage() -> str:
    width = max(len(n) for n in SUBCOMMANDS)
    lines = ["usage: n2m COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {n:<{width}}  {s.summary}" for n, s in SUBCOMMANDS.items()]
    lines += ["", "Run `n2m COMMAND --help` for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(usage())
        return 0
    if argv[0] in {"-V", "--version"}:
        from n2m.bridge import __version__

        print(f"n2m {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    sub = SUBCOMMANDS.get(name)
    if sub is None:
        print(f"n2m: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module_name, func_name = sub.target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or "?"
        if missing.startswith("n2m."):
            raise
        hint = "pip install ." if sub.needs == "runtime" else f"pip install '.[{sub.needs}]'"
        print(
            f"n2m {name}: needs the Python package {missing!r}, which is not installed.\n"
            f"Fix: {hint}  (or run `n2m doctor` to see everything that is missing)",
            file=sys.stderr,
        )
        return 3
    try:
        return int(getattr(module, func_name)(rest) or 0)
    except KeyboardInterrupt:
        print(f"\nn2m {name}: cancelled", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
