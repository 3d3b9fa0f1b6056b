"""vpp as the aggregator (AGR) of UFTP 3 (ShapeShifter), on the ``shapeshifter-uftp`` package.

* :mod:`api.uftp.protocol`: message names, ISP time arithmetic, signing, building replies.
* :mod:`api.uftp.verify`: the synchronous checks of an inbound ``SignedMessage``.
* :mod:`api.uftp.flex`: FlexRequest → FlexOffer, FlexOrder → commitment, D-Prognosis.
* :mod:`api.uftp.handlers`: what each inbound message type does.
* :mod:`api.uftp.worker`: the thread (one per API replica) that processes the inbox and
  delivers the outbox, both kept in the database.
"""

__all__: list[str] = []
