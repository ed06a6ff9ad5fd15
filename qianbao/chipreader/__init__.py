"""A passport chip reader: what a phone's NFC read does, over a PC/SC contactless reader.

``qianbao chip read`` (in :mod:`qianbao.cli`) drives it: open the chip with keys derived
from the printed zone, by PACE when EF.CardAccess offers it (:mod:`.pace`) and by BAC
otherwise (:mod:`.bac`), read the files under secure messaging
(:mod:`.passport`), let the chip answer the server's active- or chip-authentication
challenge, and submit it all to the API as the app does (:mod:`.client`). The transport
(:mod:`.apdu`) is pyscard or anything else that exchanges APDUs.
"""
