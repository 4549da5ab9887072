"""An rclpy context of a test's own, spun by an executor thread: the preamble every in-process node needs.

    runtime = SpinningContext()
    node = runtime.add(DepthNode(context=runtime.context, ...))
    ...
    node.close()  # the node's own shutdown, if it has one
    runtime.close()

conftest.py has set the domain, loopback discovery and the Fast DDS profile before any context exists.
"""

import threading

import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node


class SpinningContext:
    """Own rclpy Context + SingleThreadedExecutor spinning in a daemon thread; close() undoes it in order."""

    def __init__(self) -> None:
        self.context = Context()
        rclpy.init(context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self._nodes: list[Node] = []
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()

    def add(self, node: Node) -> Node:
        """Spin `node` (created with context=self.context) from now on; returns it."""
        self.executor.add_node(node)
        self._nodes.append(node)
        return node

    def close(self) -> None:
        """Stop spinning, destroy the nodes, shut the context down, join the thread."""
        self.executor.shutdown()
        for node in self._nodes:
            node.destroy_node()
        rclpy.shutdown(context=self.context)
        self._thread.join(timeout=10)
