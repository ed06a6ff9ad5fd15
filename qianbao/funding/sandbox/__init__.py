"""The outside parties' test modes: a card network and a mainland bank that know only
their documented test cards, keep their books in a SQLite file every process shares
(``state.py``), and answer as the real ones would. They live apart from the connectors
that talk to them (``funding/card_network.py``, ``funding/bank.py``) and implement the
same interfaces; ``funding/connectors.py`` chooses between them by setting."""
