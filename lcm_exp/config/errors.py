"""The one exception type for a bad configuration: the launcher turns it into a short message and exit code 2."""


class ConfigError(ValueError):
    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))
