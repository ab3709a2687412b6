"""The simulator's one unit for prices and money: $0.0001 (Kalshi's fee precision).

Sub-cent ("deci-cent") price ticks are multiples of DECI_CENT; the API's integer-cent
fields (balance, settlement revenue) divide by CENT.
"""

ONE = 10_000  # $1
CENT = 100  # $0.01
DECI_CENT = 10  # $0.001

# price_level_structure -> price ranges (start, end, step) in $0.0001, as the spec's
# PriceRange lists them: linear_cent is one cent everywhere; tapered_deci_cent has
# tenth-of-a-cent ticks in the tails (below $0.10 and above $0.90).
PRICE_STRUCTURES: dict[str, tuple[tuple[int, int, int], ...]] = {
    "linear_cent": ((0, ONE, CENT),),
    "tapered_deci_cent": ((0, 1000, DECI_CENT), (1000, 9000, CENT), (9000, ONE, DECI_CENT)),
}
