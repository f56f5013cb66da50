"""The exception types for errors a user causes: the launcher prints their message alone and exits with code 2.

Each problem is one line naming its key (or its shard); one problem prints as a single line.
"""


class ConfigError(ValueError):
    """A configuration that cannot run; ``problems`` lists each violated rule."""

    headline = "invalid configuration"

    def __init__(self, problems: list[str]):
        self.problems = [" ".join(str(p).split()) for p in problems]  # one line each, whatever the cause's text
        super().__init__(self.problems)

    def __str__(self) -> str:  # from problems, even when a library appended its own context to ``args``
        if len(self.problems) == 1:
            return f"{self.headline}: {self.problems[0]}"
        return f"{self.headline} ({len(self.problems)} problems):\n" + "\n".join(f"  - {p}" for p in self.problems)


class DataError(ConfigError):
    """The data cannot feed the run (all-bad shards, too many bad samples, a failing or stalled source): named shards
    and reasons in one message; a user error like a bad config."""

    headline = "data stopped the run"

    def __init__(self, message: str):
        super().__init__([message])

    def __reduce__(self):
        return type(self), (self.problems[0],)
