"""The shop's wholesale goods: a price per piece in fen (CNY) and a minimum order."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from marketplace.i18n import N_


@dataclass(frozen=True)
class Product:
    id: str
    name: str  # English source text, translated when shown
    unit: str
    price_fen: int
    minimum_quantity: int
    supplier: str


PRODUCTS: Final[tuple[Product, ...]] = (
    Product(
        id="flask-500",
        name=N_("Stainless steel vacuum flask, 500 ml"),
        unit=N_("piece"),
        price_fen=1250,
        minimum_quantity=50,
        supplier=N_("Yongkang Household Goods Factory"),
    ),
    Product(
        id="tee-cotton",
        name=N_("Plain cotton T-shirt, 180 g"),
        unit=N_("piece"),
        price_fen=680,
        minimum_quantity=100,
        supplier=N_("Guangzhou Textile Trading Co."),
    ),
    Product(
        id="phone-case",
        name=N_("Silicone phone case"),
        unit=N_("piece"),
        price_fen=230,
        minimum_quantity=200,
        supplier=N_("Shenzhen Accessories Works"),
    ),
    Product(
        id="tea-gift",
        name=N_("Longjing green tea gift box, 250 g"),
        unit=N_("box"),
        price_fen=8800,
        minimum_quantity=10,
        supplier=N_("Hangzhou West Lake Tea Co-operative"),
    ),
)


def product(product_id: str) -> Product | None:
    return next((item for item in PRODUCTS if item.id == product_id), None)


def format_cny(fen: int) -> str:
    """¥1,234.50: whole yuan with thousands separators, then the fen."""
    yuan, cents = divmod(fen, 100)
    return f"¥{yuan:,}.{cents:02d}"
