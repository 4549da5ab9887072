"""Managed (lifecycle) variants of the dpt_ros nodes, on rclpy.lifecycle, and the console scripts' start-up.

    unconfigured --configure--> inactive --activate--> active --deactivate--> inactive --cleanup--> unconfigured
    (any primary state) --shutdown--> finalized

configure loads the networks: missing or corrupt weights make it FAIL with the reason logged (/rosout),
the node stays unconfigured and up, and a later configure after fixing the parameter succeeds. activate
creates the topics and starts processing; deactivate stops every output and the inference thread;
cleanup releases the networks and their device memory. Parameters that cannot change at runtime can be
set while the node is unconfigured and are refused, with the reason, once it is configured.

`depth_node --managed` (or `segmentation_node --managed`) starts the managed node, unconfigured;
`--autostart` also runs configure and activate (the launch files' `managed` / `autostart` arguments).
The plain node (no flag) is configured and active from the start, as before.
"""

import argparse
import sys
from collections.abc import Callable
from typing import Any

from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.utilities import remove_ros_args

from dpt_ros.app.depth_setup import EngineFactory
from dpt_ros.ros.node_shell import NodeKind, NodeShell, StartupError, default_engine_factory, run_node


class ManagedNode(LifecycleNode):
    """A lifecycle node of one kind (KIND): the node shell driven by the lifecycle transitions.

    engine_factory builds the inference engines (InferenceEngine's signature); tests pass stand-ins.
    """

    KIND: NodeKind

    def __init__(self, engine_factory: EngineFactory | None = None, **node_kwargs: Any) -> None:
        super().__init__(self.KIND.name, **node_kwargs)
        self.shell = NodeShell(
            self, self.KIND, engine_factory or default_engine_factory(), frozen_when_configured=True
        )

    def _transition(self, name: str, step: Callable[[], None]) -> TransitionCallbackReturn:
        """Run one transition's work; a StartupError fails the transition with its reason in the log."""
        try:
            step()
        except StartupError as error:
            self.get_logger().error(f"{name} failed: {error}")
            return TransitionCallbackReturn.FAILURE
        return TransitionCallbackReturn.SUCCESS

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self._transition("configure", self.shell.configure)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self._transition("activate", self.shell.activate)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self._transition("deactivate", self.shell.deactivate)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self._transition("cleanup", self.shell.cleanup)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self._transition("shutdown", self.shell.cleanup)

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        """A transition raised: release everything and go back to unconfigured."""
        self.shell.cleanup()
        return TransitionCallbackReturn.SUCCESS

    def autostart(self) -> bool:
        """configure, then activate if configure succeeded (a failure's reason is logged); whether it is active."""
        success = TransitionCallbackReturn.SUCCESS
        return self.trigger_configure() == success and self.trigger_activate() == success

    def close(self) -> None:
        """Stop the inference thread and release the networks before the node is destroyed."""
        self.shell.cleanup()


def parse_start_options(args: list[str] | None) -> argparse.Namespace:
    """--managed / --autostart from the command line's non-ROS arguments (others are left to rclpy)."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--managed", action="store_true", help="start the lifecycle node, unconfigured")
    parser.add_argument("--autostart", action="store_true", help="with --managed: configure and activate at once")
    options, _ = parser.parse_known_args(remove_ros_args(sys.argv if args is None else args)[1:])
    return options


def run(plain: Callable[[], Any], managed: type[ManagedNode], name: str, args: list[str] | None = None) -> int:
    """Console script body: the plain node, or (--managed) the managed one; exit codes as `run_node`'s."""
    options = parse_start_options(args)
    if not options.managed:
        return run_node(plain, name, args)

    def start_managed() -> ManagedNode:
        node = managed()
        if options.autostart:
            node.autostart()
        return node

    return run_node(start_managed, name, args)
