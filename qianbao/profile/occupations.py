"""Occupation types, as Alipay's personal information page lists them.

A person picks one; the account keeps its ``code``, which never changes, and shows its
label in the reader's language (the labels are gettext messages).
"""

from __future__ import annotations

from dataclasses import dataclass

from qianbao.i18n import N_, translate


@dataclass(frozen=True)
class Occupation:
    code: str
    message: str  # the English msgid; ``label()`` translates it

    def label(self) -> str:
        return translate(self.message)


OCCUPATIONS: tuple[Occupation, ...] = (
    Occupation("company_employee", N_("Company employee")),
    Occupation("civil_servant", N_("Civil servant")),
    Occupation("public_institution", N_("Public institution staff")),
    Occupation("teacher", N_("Teacher")),
    Occupation("medical", N_("Medical staff")),
    Occupation("finance", N_("Finance professional")),
    Occupation("it_internet", N_("IT/Internet")),
    Occupation("lawyer", N_("Lawyer")),
    Occupation("researcher", N_("Scientist or researcher")),
    Occupation("media", N_("Media and publishing")),
    Occupation("arts_sports", N_("Arts, sports and entertainment")),
    Occupation("sales", N_("Sales")),
    Occupation("catering_service", N_("Catering and services")),
    Occupation("worker", N_("Worker")),
    Occupation("transport", N_("Driver, transport and logistics")),
    Occupation("agriculture", N_("Agriculture, forestry and fishing")),
    Occupation("military", N_("Military")),
    Occupation("business_owner", N_("Business owner")),
    Occupation("self_employed", N_("Self-employed business owner")),
    Occupation("freelancer", N_("Freelancer")),
    Occupation("foreign_employee", N_("Foreign employee in China")),
    Occupation("student", N_("Student")),
    Occupation("homemaker", N_("Homemaker")),
    Occupation("retired", N_("Retired")),
    Occupation("unemployed", N_("Unemployed")),
    Occupation("other", N_("Other")),
)

_BY_CODE = {occupation.code: occupation for occupation in OCCUPATIONS}


def find_occupation(code: str) -> Occupation | None:
    return _BY_CODE.get(code)
