"""Rate limits, lockouts and shared quotas: the throttles every domain uses (identity for
SMS codes and passwords, funding for bank checks, verification for attempts a day, the
wallet for its row claims). Infrastructure like the database, below every domain: when it
lived in risk/, identity used risk and risk's restrictions used identity, a circle.
"""
