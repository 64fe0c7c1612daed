"""Running untrusted notebook code: the worker process, its limits and the wire format.

Nothing in this subpackage may import the checks or the reference solutions: the worker
imports it inside the sandbox, where those files are not visible.
"""
