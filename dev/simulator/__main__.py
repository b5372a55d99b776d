"""`python -m dev.simulator`: the carrier simulator with the SMS gateway and, with --smtp-port, the mail sink."""

from dev.simulator.carriers import main

main()
