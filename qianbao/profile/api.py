"""The JSON API of personal information: occupation type, address, completeness, and the
lists to choose from. Thin: parse, call the service, shape."""

from __future__ import annotations

from fastapi import APIRouter

from qianbao.errors import NotFound
from qianbao.i18n import N_
from qianbao.identity.api import DbDep, SessionDep
from qianbao.profile import regions, schemas, service
from qianbao.profile.regions import City, State
from qianbao.profile.service import PersonalDetails

router = APIRouter(prefix="/api/v1", tags=["profile"])


def _place(place: State | City) -> schemas.PlaceOut:
    return schemas.PlaceOut(
        code=place.code, name=place.name(), name_en=place.name_en, name_zh=place.name_zh
    )


def personal_info_out(details: PersonalDetails) -> schemas.PersonalInfoOut:
    occupation = details.occupation
    address = details.address
    return schemas.PersonalInfoOut(
        occupation=(
            schemas.OccupationOut(code=occupation.code, label=occupation.label())
            if occupation
            else None
        ),
        address=(
            schemas.AddressOut(
                state=_place(address.state),
                city=_place(address.city),
                street=address.street,
                location=address.location(),
            )
            if address
            else None
        ),
        complete=details.complete,
        status=service.status_label(details.complete),
        missing=[
            schemas.MissingOut(field=field, label=service.field_label(field))
            for field in details.missing
        ],
        updated_at=details.updated_at,
    )


@router.get("/occupations", response_model=list[schemas.OccupationOut])
def list_occupations() -> list[schemas.OccupationOut]:
    """The occupation types to choose from, labelled in the reader's language."""
    return [schemas.OccupationOut(code=o.code, label=o.label()) for o in service.occupations()]


@router.get("/regions", response_model=list[schemas.StateOut])
def list_regions() -> list[schemas.StateOut]:
    """The states of the address picker: Overseas, mainland provinces, regions and
    municipalities, Taiwan, Hong Kong and Macau."""
    return [
        schemas.StateOut(**_place(state).model_dump(), single_city=state.is_single_city)
        for state in regions.states()
    ]


@router.get("/regions/{state}/cities", response_model=list[schemas.PlaceOut])
def list_region_cities(state: str) -> list[schemas.PlaceOut]:
    found = regions.find_state(state)
    if found is None:
        raise NotFound("profile.unknown_region", N_("Choose a state or province from the list."))
    return [_place(city) for city in found.cities]


@router.get("/me/profile", response_model=schemas.PersonalInfoOut)
def get_personal_info(session: SessionDep, db: DbDep) -> schemas.PersonalInfoOut:
    """Occupation type and address, and whether the personal information is complete."""
    details = db.run(lambda tx: service.get_personal_info(tx, session.account.id))
    return personal_info_out(details)


@router.put("/me/profile/occupation", response_model=schemas.PersonalInfoOut)
def put_occupation(
    body: schemas.OccupationIn, session: SessionDep, db: DbDep
) -> schemas.PersonalInfoOut:
    details = db.run(lambda tx: service.set_occupation(tx, session.account.id, body.occupation))
    return personal_info_out(details)


@router.put("/me/profile/address", response_model=schemas.PersonalInfoOut)
def put_address(body: schemas.AddressIn, session: SessionDep, db: DbDep) -> schemas.PersonalInfoOut:
    """Location (state and city; Overseas for both from abroad) and street, together."""
    details = db.run(
        lambda tx: service.set_address(tx, session.account.id, body.state, body.city, body.street)
    )
    return personal_info_out(details)
