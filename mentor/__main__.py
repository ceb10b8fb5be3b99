"""`python -m mentor ...`: the same as the `mentor` command (and what torchrun/accelerate launch)."""

from mentor.cli import main

main()
