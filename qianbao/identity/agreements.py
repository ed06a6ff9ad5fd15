"""The user agreement that sign-up asks a person to accept."""

from __future__ import annotations

from qianbao.i18n import N_

CURRENT_VERSION = "2026-11-01"
TITLE = N_("Qianbao user agreement and privacy policy")
PARAGRAPHS = (
    N_(
        "Qianbao keeps your money in a wallet in your name. To protect it, we check that "
        "each account belongs to a real person and that the person is who they say they are."
    ),
    N_(
        "We store your mobile number to sign you in with codes sent by SMS. Passport data "
        "and face images you give for real-name verification are encrypted, used only for "
        "that purpose, and deleted after a fixed period."
    ),
    N_(
        "What your account may do depends on how you verified your identity. Until you "
        "verify, money refunded to your balance is kept for you and released when you "
        "complete verification."
    ),
    N_(
        "Never share an SMS code or your payment password with anyone, including people "
        "who say they work for Qianbao."
    ),
)
