"""Automations at run time: the event outbox, the versioned rule store, the facts a rule sees, the dispatcher
that starts runs, the actions, and the run log (the rules themselves: rules/automation.py)."""
