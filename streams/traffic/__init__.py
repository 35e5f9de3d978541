"""Events to produce: the seeded contact-centre simulator, replays of real logs, the producer."""
