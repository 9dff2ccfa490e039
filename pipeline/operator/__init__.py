"""The operator side: the CLI, progress, the engines that run the state machines, demo and seeding.

Never shipped in the Lambda asset: the tasks must not import anything from here.
"""
