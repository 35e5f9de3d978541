"""ccpulse streaming side: faust app, pure state machine, sinks and the command line."""
