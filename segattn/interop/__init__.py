"""Other projects' trained models in segattn: read their checkpoints, map their keys to ours, write ours.

``mmseg``: mmsegmentation's ``EncoderDecoder`` checkpoints (see :mod:`.mmseg`);
:mod:`.mmseg_peer` runs mmsegmentation itself, for the tests that hold the
conversion to it.
"""
