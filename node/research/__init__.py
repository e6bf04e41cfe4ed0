"""Research: deciding what to run, running it, and turning the outcome into a signed record.

    loop.py              one worker's loop: choose work, claim, run the trainer, sign, publish
    work.py              the pure choice of the next kind of work (baseline, verify, noise, explore)
    agent.py             what a proposer reads (AgentContext) and answers (Proposal)
    space.py             the search space the user chooses: which knobs, which ranges
    builtin_proposer.py  the built-in local search: one or two knobs around the config explored from
    model_proposer.py    a surrogate fitted to the track's results picks among the local moves
    sampler_proposer.py  optuna's TPE over a restricted search space, fed from the ledger
    llm_proposer.py      the OpenAI-compatible LLM proposer, falling back to the search
    llm_prompt.py        the words sent to the LLM
    runner.py            the trainer as a child process with a hard deadline
    run_progress.py      a running experiment's progress, time left and loss curve, from the trainer's lines

Imports protocol, node.store, the leaves and trainer's light modules (spec, report); never libp2p:
the swarm is reached through loop.Network.
"""
