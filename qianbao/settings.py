"""Every knob Qianbao has, read from the environment (prefix ``QIANBAO_``).

Defaults that come from Alipay's published behaviour or from a standard say where
they come from (see ``shared/reference/alipay_rules.md`` in the project workspace).
"""

from __future__ import annotations

import ipaddress
import json
import re
import secrets
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, IPvAnyNetwork, PrivateAttr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from qianbao.private_files import create_private


class Settings(BaseSettings):
    # hide_input_in_errors: a refused setting's message must not echo the others (keys).
    model_config = SettingsConfigDict(
        env_prefix="QIANBAO_", env_file=".env", extra="ignore", hide_input_in_errors=True
    )

    # --- where things live -------------------------------------------------------------
    # SQLAlchemy URL: SQLite by default, postgresql+psycopg://... in production.
    database_url: str = "sqlite:///./var/qianbao.db"
    var_dir: Path = Path("./var")  # local state: the SQLite file, generated keys, sandboxes
    # The server key: keyed hashes of codes, session tokens, card and passport
    # fingerprints. Neither it nor its _FILE set, a random key is created once in
    # ``var_dir/secret.key`` (development only: refused when served over https).
    secret_key: str = ""
    # Or a file holding it (a Docker or Kubernetes secret); never both.
    secret_key_file: Path | None = None
    # Where people reach the service. Its scheme decides the cookies' Secure flag and
    # whether this is production: served over https, the keys must be given (setting or
    # file), never generated into var/ beside the database.
    public_base_url: str = "http://127.0.0.1:8000"
    # Keys for encryption at rest (qianbao/sealing.py): "id:base64key,..." newest first.
    sealing_keys: str = ""
    # Or a file holding them, comma- or line-separated; never both. Neither set, a key is
    # generated into ``var_dir/sealing.keys`` (development only, as the server key).
    sealing_keys_file: Path | None = None
    # Reverse proxies whose X-Forwarded-For is believed (qianbao/proxies.py): addresses
    # or networks, "10.0.0.0/8,127.0.0.1" or a JSON list. Empty: nobody's.
    trusted_proxies: Annotated[list[IPvAnyNetwork], NoDecode] = Field(default_factory=list)

    # --- behaviour -------------------------------------------------------------------
    # Demo mode: seeded demo accounts, a fixed SMS code for them, the demo shop and the
    # /api/v1/demo routes (which only then appear in /openapi.json). Never in production.
    demo: bool = False
    # The language when neither the cookie, Accept-Language nor the account says one.
    default_language: Literal["en", "zh_Hans"] = "en"
    # The region preselected in the calling-code picker: +86, as in the original app.
    default_region: str = "CN"
    # How many payments and transfers Home lists under "Recent activity".
    home_recent_count: int = Field(default=5, ge=1, le=20)

    # --- SMS codes (NIST SP 800-63B 5.1.3, OWASP ASVS 2.7) ---------------------------
    # The original app sent four digits (mysourcify guide); six is the default here.
    sms_code_length: int = Field(default=6, ge=4, le=8)
    sms_code_ttl_seconds: int = 300  # how long a code is good for
    sms_code_max_attempts: int = 5  # wrong tries before a code is spent
    sms_failures_before_lock: int = 20  # wrong codes, per number and window, that lock it
    sms_failure_window_seconds: int = 24 * 3600  # the window those wrong codes count in
    sms_lock_seconds: int = 24 * 3600  # how long a locked number gets no codes
    sms_resend_cooldown_seconds: int = 60  # between two codes for one purpose to one number
    # Codes for one purpose (sign-up, login, security change) sent to one number: a
    # sign-up code just sent does not hold back the payment-password code.
    sms_per_purpose_per_hour: int = 3
    sms_per_purpose_per_day: int = 6  # codes for one purpose sent to one number
    sms_per_number_per_hour: int = 5  # codes sent to one number, all purposes together
    sms_per_number_per_day: int = 10  # codes sent to one number, all purposes together
    sms_per_ip_per_hour: int = 30  # codes asked for from one address (IPv6: its /64)
    sms_per_ip_per_day: int = 100  # codes asked for from one address (IPv6: its /64)
    sms_per_country_per_hour: int = 2000  # codes to all the numbers of one calling code
    # Numbers that share all but their last ``sms_prefix_tail_digits`` digits form one
    # range; toll-fraud ("SMS pumping") walks through such ranges of premium numbers.
    sms_prefix_tail_digits: int = 3
    sms_per_prefix_per_hour: int = 20  # codes to one such range of numbers
    sms_countries_per_ip_per_day: int = 3  # countries one address may ask codes for
    number_lookups_per_ip_per_hour: int = 120  # "has this number an account?" per address

    # outbox: the sandbox (kept in the database, read with `qianbao sms outbox`); log: the
    # log; twilio: Twilio's Messaging API, or any provider of that shape (twilio_base_url).
    sms_gateway: Literal["outbox", "log", "twilio"] = "outbox"
    twilio_account_sid: str = ""  # the twilio gateway's account (HTTP basic auth user)
    twilio_auth_token: str = ""  # and its password
    twilio_from: str = ""  # the sender number, E.164
    twilio_base_url: str = "https://api.twilio.com"  # another provider with its shape
    outbox_max_attempts: int = 8  # tries of a message before it is a dead letter

    # --- email (qianbao/notify/email.py); outbox is the sandbox ---------------------------
    # outbox: the sandbox (an address at .invalid bounces, as test data); log; smtp.
    email_gateway: Literal["outbox", "log", "smtp"] = "outbox"
    smtp_host: str = ""  # the smtp gateway's server
    smtp_port: int | None = None  # None: 587 starttls, 465 ssl, 25 none
    smtp_security: Literal["starttls", "ssl", "none"] = "starttls"  # none: no credentials sent
    smtp_username: str = ""  # empty: no login
    smtp_password: str = ""  # with smtp_username
    smtp_timeout_seconds: float = 10.0  # per connection and command
    email_from: str = ""  # the From address; required for smtp
    email_from_name: str = "Qianbao"  # the From display name

    # --- sessions (NIST SP 800-63B 4.2.3: AAL2 idle 30 min, absolute 12 h) --------------
    session_idle_seconds: int = 30 * 60  # a session unused this long ends
    session_absolute_seconds: int = 12 * 3600  # a session ends this long after login
    # Writing "last seen" on every request would turn each read into a write. Shorter than
    # every idle limit (persons', staff API tokens', merchants'), or the server refuses
    # to start: a session's idle clock may start up to one interval early.
    session_touch_interval_seconds: int = 60
    # A money operation takes its session from a per-process cache seen alive this recently
    # and checks it again inside its own transaction (one read instead of a transaction
    # of its own; an ended session still stops it at once). 0: no cache.
    session_cache_seconds: float = 5.0
    # Payments and transfers that arrive together in one process share one transaction
    # (each in its own savepoint, each with its own answer): at most this many. 1: never.
    money_batch_max: int = 50
    # PostgreSQL: a payment by balance is first tried as one call to a database function
    # that pays only when every rule says yes (wallet/payments/in_database.py); anything
    # else goes on in Python. False: always Python (SQLite always is).
    money_in_database: bool = True
    # A staff API bearer token (POST /api/v1/staff/sessions) ends this long after sign-in:
    # shorter than the back office's page session (10 h), since a token sits in a script or
    # a tool rather than behind a browser's SameSite cookie.
    staff_api_token_seconds: int = Field(default=3600, ge=60)
    # A staff API token unused this long ends (the page session's: 30 min).
    staff_api_token_idle_seconds: int = Field(default=15 * 60, ge=60)
    # "auto": Secure when public_base_url is https. Never read from the request, whose
    # Host and scheme the client (or a proxy) chooses.
    cookie_secure: Literal["auto", "always", "never"] = "auto"

    # --- where a sign-in comes from (qianbao/identity/places.py) ---------------------------
    # A MaxMind DB file with country data (GeoLite2-Country or -City, GeoIP2, DB-IP's
    # country lite in MMDB form), installed and kept fresh by the operator (geoipupdate);
    # Qianbao never downloads one. Unset: only ip_countries below is known.
    geoip_database: Path | None = None
    # Networks to ISO 3166-1 countries, asked before the database: an operator's own
    # networks, the demo, the tests. JSON: {"203.0.113.0/24": "GB", "2001:db8::/32": "SG"}.
    ip_countries: dict[str, str] = Field(default_factory=dict)
    # A password sign-in from a country none of the account's earlier sign-ins came
    # from asks for an SMS code as well; so long is the password's proof good for.
    new_country_code_window_seconds: int = Field(default=600, ge=60)

    # --- passwords (argon2id, RFC 9106; cost measured by bench/passwords.py) -----------
    argon2_time_cost: int = 3  # argon2id passes over memory
    argon2_memory_kib: int = 65536  # argon2id memory per hash
    argon2_parallelism: int = 2  # argon2id lanes
    # Alipay: 3 wrong payment passwords lock payments for 3 hours (alipay_rules.md 5).
    payment_password_max_failures: int = 3
    payment_password_lock_seconds: int = 3 * 3600
    # Login by password: after this many failures in a day, each further try waits
    # twice as long as the one before (1 s, 2 s, 4 s, ... up to the cap).
    password_failures_before_delay: int = 5
    password_failures_before_delay_per_ip: int = 20
    password_delay_cap_seconds: int = 15 * 60

    # --- real-name verification (qianbao/verification) ----------------------------------
    # Verifying users must be 18 or over (alipay_rules.md 1).
    verification_minimum_age: int = 18
    # A passport that expires within this many days is refused (0: valid today is enough).
    verification_minimum_validity_days: int = 0
    # Tries per person per 24 hours, photo page reads and face checks counted together.
    verification_attempts_per_day: int = 10
    # A liveness challenge must be answered within this time of being asked.
    verification_challenge_ttl_seconds: int = 300
    # A passport chip's chip-authentication challenge must be answered within this time
    # (the phone holds the passport to the reader meanwhile).
    verification_chip_auth_ttl_seconds: int = 120
    # Face comparison: Euclidean distance between dlib ResNet embeddings. At or below
    # threshold - margin: a match; above threshold + margin: no match; between: a
    # reviewer decides. Chosen by bench/face_match.py (see README, "Figures"): a match
    # at or below 0.40 keeps 0.24 below the closest impostor pair measured, and 0.20
    # below dlib's published 0.6 (which confuses many East Asian faces).
    face_match_threshold: float = 0.475
    face_review_margin: float = 0.075
    # Uploads: a photo page or a selfie frame.
    verification_max_upload_bytes: int = 10 * 1024 * 1024
    verification_max_pixels: int = 40_000_000
    verification_max_frames: int = 40
    verification_min_frames: int = 8
    # Images (photo page, portrait, selfie frames) are deleted this long after the
    # decision by `qianbao kyc purge` (the worker runs it daily); the decision and the
    # masked facts stay.
    verification_image_retention_days: int = 30
    # A passed face check (for a verified person's payment-password reset) is good for
    # this long, and for one reset.
    face_check_valid_seconds: int = 600
    # A passport chip's Document Signer and CSCA must be of the passport's issuing state
    # (the zone's ICAO code mapped to the certificates' ISO alpha-2 country: D is DE,
    # GBN is GB, RKS is XK, UNO is UN, EUE is EU). Known exceptions, each
    # "ISSUING-STATE:CERTIFICATE-COUNTRY" (the zone's code, then the countryName allowed
    # on both certificates), comma-separated or a JSON list, e.g. "UNK:XK". Codes that
    # name no state (XXA, XPO ...) pass only when listed here.
    chip_signer_country_exceptions: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Master lists are imported only when their signer chains to a CSCA already in the
    # trust store, or to one of these: SHA-256 fingerprints (hex, colons allowed) of a
    # master-list signer's certificate or of the CSCA that issued it, checked by the
    # operator against its publisher's (e.g. a state's published CSCA fingerprint).
    chip_master_list_anchors: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # A CSCA's CRL past its nextUpdate (Doc 9303 Part 12 has each CSCA issue one at
    # least every 90 days and leaves an overdue one to the receiving State): "warn"
    # accepts the chip on the last CRL (its revocations still count) and logs a
    # warning, as inspection systems do rather than refuse a whole state's passports
    # for the issuer's delay; "refuse" turns such chips away (chip.crl_overdue).
    chip_stale_crl: Literal["refuse", "warn"] = "warn"

    # --- mainland bank cards (qianbao/funding; docs/sandbox_bank.md) ---------------------
    # sandbox: the test bank of docs/sandbox_bank.md; http: a real bank's gateway that
    # speaks its signed protocol (qianbao/funding/bank.py).
    bank_connector: Literal["sandbox", "http"] = "sandbox"
    bank_http_url: str = ""  # the http connector's base URL
    bank_http_secret: str = ""  # its shared HMAC-SHA256 secret (requests and answers)
    bank_http_timeout_seconds: float = 10.0  # per request to it
    # Four-element checks a person may start in 24 hours (each one texts a code, and a
    # mismatch tells which element is wrong, so guessing must stay slow).
    bank_checks_per_day: int = 5

    # --- foreign cards (qianbao/funding/card_network.py; docs/sandbox_card_network.md) ----
    card_network: Literal["sandbox"] = "sandbox"  # docs/sandbox_card_network.md
    # Alipay and WeChat: no fee up to CNY 200 a payment; above, 3% of the whole amount
    # (MOFCOM guide, 2024; alipay_rules.md 3).
    foreign_card_fee_threshold: str = "200 CNY"
    foreign_card_fee_percent: Decimal = Decimal(3)
    # CNY per unit of the card's currency: CFETS central parity of 1 September 2025. A
    # real card network converts at its own daily rate; these only drive the sandbox.
    fx_rates: dict[str, Decimal] = Field(
        default_factory=lambda: {
            "USD": Decimal("7.1072"),
            "EUR": Decimal("8.3129"),
            "GBP": Decimal("9.6061"),
            "JPY": Decimal("0.04834"),
            "HKD": Decimal("0.91174"),
            "KRW": Decimal("0.0051201"),
        }
    )
    # A card payment not recorded this long after it began is given up by the worker and
    # whatever the card network took is sent back (a crash between the card and the
    # ledger; a person who never came back from 3-D Secure, whose challenge lasts 10
    # minutes). Well above any real payment's time, so a live one is never cut short.
    card_attempt_grace_seconds: int = Field(default=1800, ge=60)
    # A refund to a card or a bank card is held in the ledger before the card network or
    # the bank is asked. One left pending this long (its request died half-way) is asked
    # again by the worker under the same key and settled from the answer; well above a
    # real refund call's time, so a live request is rarely raced (a race is harmless: the
    # key makes both ask for the one refund).
    refund_grace_seconds: int = Field(default=300, ge=30)
    # How long such a hold stands at most: a backstop far beyond the grace time (the
    # worker settles pending refunds long before; an expired hold is released).
    refund_hold_days: int = Field(default=30, ge=1)

    # --- Tour Pass (qianbao/wallet/tour_pass/service.py; alipay_rules.md section 4) ---------------
    # Alipay Tour Pass (Nov 2019): CNY 100 to 2,000 a top-up, at most CNY 2,000 held,
    # valid 90 days, then what is left goes back to the original card. TourCard (2023+):
    # a 5% top-up service fee, which is not given back.
    tour_pass_min_top_up: Decimal = Decimal(100)  # CNY
    tour_pass_max_top_up: Decimal = Decimal(2000)  # CNY
    tour_pass_max_balance: Decimal = Decimal(2000)  # CNY
    tour_pass_validity_days: int = 90
    tour_pass_fee_percent: Decimal = Decimal(5)
    # Who may not open one, by the region of their mobile number: the 2019 Tour Pass was
    # for foreign passports with an overseas number, so not for mainland, Hong Kong,
    # Macao or Taiwan numbers (TourCard later admitted HK/MO/TW: set [] for that).
    tour_pass_refused_phone_regions: list[str] = Field(
        default_factory=lambda: ["CN", "HK", "MO", "TW"]
    )

    # --- risk rules (qianbao/risk/restrictions.py): data, not code -----------------------
    # An unverified account making this many card payments within the window is
    # restricted until it verifies or a reviewer lifts it.
    risk_card_velocity_payments: int = 5
    risk_card_velocity_minutes: int = 10
    # A card linked to this many accounts restricts the newest of them.
    risk_shared_card_accounts: int = 3
    # A freeze on an account holding more than this (its balance and held money, CNY)
    # is released only by two different risk officers: the first approves, the second
    # releases; both are in the audit log. At or below it, one risk officer releases.
    freeze_two_person_release_above: Decimal = Field(default=Decimal(50000), ge=0)

    # --- transfers between people (qianbao/wallet/transfers/service.py) --------------------------
    # The limits per transfer, per day and per year are policy.py's, per tier. A sender's
    # optional note, shown to both people, is at most this many characters (the column
    # holds 200); Alipay's transfer note is short, a line on a phone.
    transfer_note_max_chars: int = Field(default=50, ge=0, le=200)
    # Numbers and emails that name no account, per sender: past these, lookups wait, so
    # that nobody can walk the number space to learn who has an account. A person who
    # mistypes a number a few times never meets them.
    transfer_unknown_recipients_per_hour: int = Field(default=10, ge=1)
    transfer_unknown_recipients_per_day: int = Field(default=30, ge=1)

    # --- what each verification level may do (qianbao/policy.py) -------------------------
    # Overrides of the table's defaults, per tier: {"class_ii": {"balance_per_year":
    # "150000 CNY", "send_transfers": false}}.
    policy_overrides: dict[str, dict[str, Any]] = Field(default_factory=dict)

    # --- pay-for-me (代付, qianbao/wallet/pay_for_me/service.py) ---------------------------------
    # How long a link a friend pays through stays good. Taobao cancels a 代付 request
    # the payer does not confirm "in time" (alipay_rules.md 8) without a published
    # figure: 24 hours is Qianbao's choice. The order stays payable while a link lives
    # (a friend abroad rarely answers within a shop's 15 minutes), up to pay_for_me_order_max_hours.
    pay_for_me_link_hours: int = Field(default=24, ge=1, le=24 * 7)
    # Links keep an order payable no longer than this after it was made (an order the
    # shop gave a longer timeout keeps its own time).
    pay_for_me_order_max_hours: int = Field(default=72, ge=1, le=24 * 15)

    # --- top-up codes sold by stores (qianbao/wallet/topup_codes/service.py) ---------------------
    # No source documents mainland store top-up codes (alipay_rules.md, "Cash top-up at
    # 7-Eleven": AlipayHK only, HK$100 to 3,000). A code is worth at most one Tour Pass
    # top-up (CNY 2,000, alipay_rules.md), so one lost or stolen code stays a small loss.
    topup_code_min_value: Decimal = Decimal(1)  # CNY
    topup_code_max_value: Decimal = Decimal(2000)  # CNY
    topup_code_max_batch: int = 10_000
    # Guessing: after this many codes that did not work in a day (unknown, used, void),
    # each further try waits twice as long as the one before: 1 min, 2 min, 4 min, ...
    # up to the cap; per account, and per address (shared by a whole office or NAT).
    topup_code_failures_before_delay: int = 5
    topup_code_failures_before_delay_per_ip: int = 20
    topup_code_delay_base_seconds: int = 60
    topup_code_delay_cap_seconds: int = 24 * 3600

    # --- the worker (qianbao/jobs.py) ----------------------------------------------------
    # A periodic job a worker took is its own for this long; a worker killed mid-job
    # leaves it to run out, then another worker runs the job again.
    worker_lease_seconds: int = 600

    # --- logs and metrics (qianbao/observability; README "Logs and metrics") -------------
    # Logging level of Qianbao and uvicorn: DEBUG, INFO, WARNING or ERROR (SQLAlchemy stays
    # at WARNING: at INFO it would log every statement's parameters).
    log_level: str = "INFO"
    # "json": one JSON object per line, for a log collector; "console": for a person.
    log_format: Literal["json", "console"] = "json"
    # GET /metrics answers only "Authorization: Bearer <this>"; empty: no /metrics route.
    metrics_token: str = ""
    # Or a listener of its own, "127.0.0.1:9100", that asks for no token (bind it where
    # only Prometheus reaches); started by `qianbao serve`. Empty: none.
    metrics_bind: str = ""
    # prometheus-client's multiprocess folder (PROMETHEUS_MULTIPROC_DIR); `qianbao serve
    # --workers N` uses var_dir/metrics when neither is set.
    metrics_dir: Path | None = None

    # --- the trade API (Alipay's Open Platform protocol, qianbao/openplatform/) --------
    # RSA keys: an app's uploaded key and the platform's own are at least this long
    # (Alipay: RSA2 keys of 2048 bits or more).
    gateway_min_key_bits: int = 2048
    # A request whose timestamp (Beijing time) is further than this from the server's
    # clock, in the past or the future, is refused (isv.invalid-timestamp).
    gateway_timestamp_tolerance_seconds: int = 600
    # After an app uploads a new key, requests signed with the old one are still
    # accepted for this long, so a shop can switch its servers one by one.
    gateway_app_key_overlap_seconds: int = 86400
    # How long a gateway trade waits for payment when the shop sets no timeout_express
    # or time_expire (Alipay's default for page pay is 15 days; the cashier's 15 min).
    gateway_default_timeout_minutes: int = 15
    # A paid trade can be refunded this long (Alipay: set by contract, typically 12
    # months); after it the trade reads TRADE_FINISHED and refunds are refused.
    gateway_refund_window_days: int = 365
    # Waits between notification attempts until the shop answers "success": Alipay's
    # 4m,10m,10m,1h,2h,6h,15h (alipay_rules.md, section 10); then it gives up.
    gateway_notify_retry_seconds: Annotated[list[int], NoDecode] = Field(
        default_factory=lambda: [240, 600, 600, 3600, 7200, 21600, 54000]
    )
    # A person's payment code, scanned by a shop (alipay.trade.pay), works once and for
    # this long (Alipay's app renews its code every minute).
    payment_code_seconds: int = 60
    # The most a shop may take with a payment code, which stands for the payment
    # password (CNY, per payment; the PBOC's barcode rule caps the weakest dynamic codes
    # at CNY 1,000 a day, alipay_rules.md section 2d).
    payment_code_password_free_limit: int = 1000
    # A daily bill's download link works this long (Alipay's: 30 seconds).
    gateway_bill_link_seconds: int = 30
    # One notification attempt waits this long for the shop's answer.
    gateway_notify_timeout_seconds: float = 10.0
    # And reads at most this much of it (a shop's "success" is seven bytes).
    gateway_notify_max_answer_bytes: int = 4096
    # --- The merchant portal (openplatform/portal) ----------------------------------------
    # A portal session ends when unused this long.
    merchant_session_idle_seconds: int = Field(default=30 * 60, ge=60)
    # And at the latest this long after the sign-in.
    merchant_session_seconds: int = Field(default=10 * 3600, ge=60)
    # A merchant API token (Authorization: Bearer on /api/v1/merchant/...) lives this long.
    merchant_api_token_seconds: int = Field(default=3600, ge=60)
    # At most this many orders on one page of the portal's order list.
    merchant_portal_page_size: int = Field(default=100, ge=1, le=1000)
    # --- Log in with Qianbao (the OpenID Connect provider, openplatform/oidc) ------------
    # The issuer shops see in discovery, ID tokens and the authorization response; empty:
    # public_base_url.
    oidc_issuer: str = ""
    oidc_access_token_seconds: int = 600  # an access token's life (userinfo, introspection)
    oidc_refresh_token_seconds: int = 30 * 86400  # a refresh token's life; each use rotates it
    oidc_id_token_seconds: int = 600  # an ID token's life (a retired key stays this long)
    oidc_code_seconds: int = 60  # an authorization code's life (used once)
    oidc_signing_alg: Literal["ES256", "RS256"] = "ES256"  # the algorithm of new signing keys
    # The demo marketplace (examples/marketplace), registered by `qianbao serve --demo`.
    demo_marketplace_client_secret: str = "demo-marketplace-secret"  # noqa: S105 (documented demo value)
    demo_marketplace_redirect_uri: str = "http://127.0.0.1:8001/auth/qianbao/callback"

    # --- demo ------------------------------------------------------------------------
    # Demo users may log in with this fixed code; only when ``demo`` is on and only
    # for the seeded demo numbers.
    demo_sms_code: str = "246810"

    @field_validator("gateway_notify_retry_seconds", mode="before")
    @classmethod
    def _split_retry_schedule(cls, value: object) -> object:
        if isinstance(value, str):
            return [int(part) for part in value.replace(" ", "").split(",") if part]
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _no_catch_all(cls, networks: list[IPvAnyNetwork]) -> list[IPvAnyNetwork]:
        # Trusting every address would let every client write its own address.
        if any(network.prefixlen == 0 for network in networks):
            raise ValueError("a /0 network trusts everybody: name your own proxies")
        return networks

    @field_validator("chip_signer_country_exceptions", "chip_master_list_anchors", mode="before")
    @classmethod
    def _split_chip_lists(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("chip_signer_country_exceptions")
    @classmethod
    def _country_pairs(cls, pairs: list[str]) -> list[str]:
        normal = [pair.strip().upper() for pair in pairs]
        for pair in normal:
            if not re.fullmatch(r"[A-Z]{1,3}:[A-Z]{2}", pair):
                raise ValueError(f"{pair!r} is not ISSUING-STATE:COUNTRY, e.g. UNK:XK")
        return normal

    @field_validator("chip_master_list_anchors")
    @classmethod
    def _fingerprints(cls, fingerprints: list[str]) -> list[str]:
        normal = [value.replace(":", "").strip().lower() for value in fingerprints]
        for value in normal:
            if not re.fullmatch(r"[0-9a-f]{64}", value):
                raise ValueError(f"{value!r} is not a SHA-256 fingerprint (64 hex digits)")
        return normal

    @field_validator("ip_countries")
    @classmethod
    def _check_ip_countries(cls, value: dict[str, str]) -> dict[str, str]:
        checked = {}
        for network, country in value.items():
            ipaddress.ip_network(network.strip(), strict=False)  # ValueError: refused
            code = country.strip().upper()
            if len(code) != 2 or not code.isascii() or not code.isalpha():
                raise ValueError(f"ip_countries: {country!r} is no ISO 3166-1 alpha-2 code")
            checked[network.strip()] = code
        return checked

    @model_validator(mode="after")
    def _keys_from_files(self) -> Settings:
        self.secret_key = _secret(
            "SECRET_KEY", self.secret_key, self.secret_key_file, self.is_production()
        )
        self.sealing_keys = _secret(
            "SEALING_KEYS", self.sealing_keys, self.sealing_keys_file, self.is_production()
        )
        return self

    @model_validator(mode="after")
    def _touch_within_idle(self) -> Settings:
        """A session's last use is written at most every touch interval, so its idle clock
        may start up to one interval early: an idle limit no longer than the interval would
        end sessions that are in use."""
        touch = self.session_touch_interval_seconds
        for name in _IDLE_LIMITS:
            if getattr(self, name) <= touch:
                raise ValueError(
                    f"QIANBAO_{name.upper()} must be longer than "
                    f"QIANBAO_SESSION_TOUCH_INTERVAL_SECONDS ({touch})"
                )
        return self

    def is_production(self) -> bool:
        """Served over https and not a demo: then the keys must be given, not generated."""
        return urlsplit(self.public_base_url).scheme == "https" and not self.demo

    def secure_cookies(self) -> bool:
        if self.cookie_secure == "auto":
            return urlsplit(self.public_base_url).scheme == "https"
        return self.cookie_secure == "always"

    def sqlite_path(self) -> Path | None:
        prefix = "sqlite:///"
        if self.database_url.startswith(prefix) and self.database_url != "sqlite:///:memory:":
            return Path(self.database_url[len(prefix) :])
        return None

    _hmac_key: bytes | None = PrivateAttr(default=None)

    def issuer(self) -> str:
        """The OpenID Connect issuer identifier (no trailing slash)."""
        return (self.oidc_issuer or self.public_base_url).rstrip("/")

    def hmac_key(self) -> bytes:
        """The server key for keyed hashes; created once per ``var_dir`` if not set."""
        if self.secret_key:
            return self.secret_key.encode()
        if self._hmac_key is None:
            key = create_private(self.var_dir / "secret.key", secrets.token_urlsafe(48))
            self._hmac_key = key.strip().encode()
        return self._hmac_key


# The idle limits of every kind of session whose last use is written every touch interval.
_IDLE_LIMITS = (
    "session_idle_seconds",
    "staff_api_token_idle_seconds",
    "merchant_session_idle_seconds",
)


def _secret(name: str, value: str, file: Path | None, required: bool) -> str:
    """A key from ``QIANBAO_<name>`` or from the file ``QIANBAO_<name>_FILE`` names."""
    if value and file is not None:
        raise ValueError(f"QIANBAO_{name} and QIANBAO_{name}_FILE are both set: give one")
    if file is not None:
        try:
            value = file.read_text().strip()
        except OSError as error:
            raise ValueError(f"QIANBAO_{name}_FILE: cannot read {file}: {error}") from None
        if not value:
            raise ValueError(f"QIANBAO_{name}_FILE: {file} is empty")
    if not value and required:
        raise ValueError(
            f"QIANBAO_{name} or QIANBAO_{name}_FILE must be set when the service is served"
            " over https (QIANBAO_PUBLIC_BASE_URL): a key generated into var/ beside the"
            " database is for development"
        )
    return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
