"""`python -m qa.eval [OPTIONS]`: the same command as `qa eval`."""

from qa.eval.cli import eval_command

if __name__ == "__main__":
    eval_command(prog_name="python -m qa.eval")
