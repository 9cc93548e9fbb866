"""The README's two set-up commands and .ci/run must not drift apart."""
import re


def test_ci_runs_the_readme_commands(repo):
    readme = (repo / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```bash\n(.*?)```", readme, re.S).group(1)
    commands = [line for line in block.splitlines() if line and not line.startswith("#")]
    assert len(commands) == 2, commands
    ci = [line.split("   #")[0].strip() for line in (repo / ".ci" / "run").read_text().splitlines()
          if line and not line.startswith(("#", "set ", "cd "))]
    install, tests = commands
    assert install.startswith(ci[0] + " && ")  # the first command = install && main job
    assert tests in ci[1:]  # as the README writes it (.ci/run starts the local SLURM cluster around it)
