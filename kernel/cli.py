"""``zkernel`` command line: ``zkernel serve --config zoo.cfg``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from kernel import __version__
from kernel.config import ConfigError, load_config
from kernel.storage import StorageError


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="zkernel",
                                     description="ZooKeeper-compatible coordination service")
    parser.add_argument("--version", action="version", version=f"zkernel {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run a server from a zoo.cfg")
    serve.add_argument("--config", "-c", required=True, help="path to zoo.cfg")
    serve.add_argument("--log-level", default="INFO",
                       choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    from kernel.plugins import plugin_manager

    commands = {}
    for group in plugin_manager().hook.zk_cli_commands():
        for cmd in group:
            sp = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help)
            cmd.configure(sp)
            commands[cmd.name] = cmd
    args = parser.parse_args(argv)
    if args.command in commands:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
        return int(commands[args.command].run(args))
    if args.command == "serve":
        logging.basicConfig(level=getattr(logging, args.log_level),
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        try:
            config = load_config(args.config)
            from kernel.runtime.server import run_server

            try:
                run_server(config)
            except BaseExceptionGroup as group:
                # Task groups wrap a failing task's error; report the error itself.
                raise _first_leaf(group) from None
        except ConfigError as e:
            print(f"zkernel: configuration error: {e}", file=sys.stderr)
            return 2
        except StorageError as e:
            print(f"zkernel: refusing to start: {e}", file=sys.stderr)
            return 3
        except OSError as e:
            print(f"zkernel: {e}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            return 0
    return 0


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


if __name__ == "__main__":
    sys.exit(main())
