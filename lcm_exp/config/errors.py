"""The one exception type for a bad configuration: the launcher turns it into a short message and exit code 2.

Each problem is one line naming its key; one problem prints as a single line.
"""


class ConfigError(ValueError):
    headline = "invalid configuration"

    def __init__(self, problems: list[str]):
        self.problems = [" ".join(str(p).split()) for p in problems]  # one line each, whatever the cause's text
        if len(self.problems) == 1:
            text = f"{self.headline}: {self.problems[0]}"
        else:
            text = f"{self.headline} ({len(self.problems)} problems):\n" + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(text)
