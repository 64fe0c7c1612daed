"""The submission as checks see it: a namespace to call into (in-process or in the sandbox) and the
static check of what a graded function can reach.  Imports only the sandbox and the base modules."""
