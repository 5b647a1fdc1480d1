"""Reward functions shared by tasks: answer checking (math) and sandboxed code execution.

Tasks own their prompts and data; what is hard to get right and shared between tasks (answer
equivalence through math-verify, running untrusted programs) lives here, one idea per file."""
