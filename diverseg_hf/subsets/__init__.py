"""DiverSeg-I/-P/-IP: presets with their licences, the official lists, build, and the ``datasets`` builder."""
