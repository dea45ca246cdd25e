"""``ctid simulate``: a synthetic PBX built from real Asterisk 22 call recordings.

Each simulated call is one recorded call (a *template*, in ``templates/``) moved to another
time, other seats and another customer, with every identifier renamed so that concurrent calls
never share a uniqueid, channel or bridge.  The events are the PBX's own, noise included; the
truth (talk and hold per seat and per call) follows from the template's ground truth.
"""
