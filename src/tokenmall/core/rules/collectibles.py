"""Digital collectibles (数字藏品, SPEC v2 §11): numbered items that consumers take for EP, gift
after a holding period and use once. No sale, listing or price between consumers: that is
what keeps them within the 2022 self-regulation initiative (docs/agents-and-collectibles.md)."""

from tokenmall.core.accounts import Collection, Item
from tokenmall.core.effects import CollectionIssued, Effects, Field, ItemMoved
from tokenmall.core.errors import ErrorCode, Rejected
from tokenmall.core.fields import EDITION_MAX, Command, check_item, json_int, money_fen
from tokenmall.core.rules.cash import refuse_frozen
from tokenmall.core.rules.points import consumer_named
from tokenmall.core.state import State
from tokenmall.core.units import ceil_div


def issue_collection(state: State, command: Command, fx: Effects) -> None:
    collection_id = command["collection"]
    edition = json_int(command["edition"], 1, EDITION_MAX, "edition")
    if collection_id in state.collections:
        raise Rejected(ErrorCode.DUPLICATE_COLLECTION, f"collection {collection_id!r} exists")
    value_fen = money_fen(command["value"])
    state.collections[collection_id] = Collection(
        id=collection_id, edition=edition, value_fen=value_fen
    )
    fx.events.append(CollectionIssued(collection_id, edition))


def claim_collectible(state: State, command: Command, fx: Effects) -> None:
    """The next item of a collection for EP worth its value (兑换藏品): burned, the pool
    unchanged, as for redeem; the EP asked rounds up (the pool's favour)."""
    consumer = consumer_named(state, command["user"])
    refuse_frozen(consumer)
    collection_id = command["collection"]
    collection = state.collections.get(collection_id)
    if collection is None:
        raise Rejected(ErrorCode.UNKNOWN_COLLECTION, f"no collection {collection_id!r}")
    if collection.claimed >= collection.edition:
        raise Rejected(ErrorCode.SOLD_OUT, "every item of the edition is claimed")
    pool_fen, supply_units = state.price()
    value_fen = collection.value_fen
    units = ceil_div(value_fen * supply_units, pool_fen)
    if consumer.ep < units:
        raise Rejected(ErrorCode.INSUFFICIENT_POINTS, "not enough EP")
    state.supply -= units
    state.burned += units
    fx.add_ep(consumer, -units)
    fx.add_quota(consumer, -min(consumer.quota, value_fen))
    consumer.goods += value_fen
    fx.postings.append((consumer.id, Field.GOODS, value_fen))
    collection.claimed += 1
    item_id = f"{collection_id}#{collection.claimed}"
    state.items[item_id] = Item(id=item_id, owner=consumer.id, acquired_day=state.day)
    fx.events.append(ItemMoved(item_id, consumer.id, None))


def gift_collectible(state: State, command: Command, fx: Effects) -> None:
    item_id = check_item(command)
    giver_id, receiver_id = command["from"], command["to"]
    if giver_id == receiver_id:
        raise Rejected(ErrorCode.INVALID_COMMAND, "'from' and 'to' are the same")
    item = _item_held(state, item_id, giver_id)
    receiver = consumer_named(state, receiver_id)
    refuse_frozen(state.consumers[giver_id], receiver)
    if item.used:
        raise Rejected(ErrorCode.ALREADY_USED, "a used item cannot be gifted")
    if state.day < item.acquired_day + state.params.collectible_lock_days:
        raise Rejected(ErrorCode.LOCKED, "held for less than the holding period")
    item.owner = receiver_id
    item.acquired_day = state.day
    item.gifts += 1
    fx.events.append(ItemMoved(item_id, receiver_id, giver_id))


def use_collectible(state: State, command: Command, fx: Effects) -> None:
    item_id = check_item(command)
    user_id = command["user"]
    item = _item_held(state, item_id, user_id)
    refuse_frozen(state.consumers[user_id])
    if item.used:
        raise Rejected(ErrorCode.ALREADY_USED, "the item was used")
    item.used = True
    fx.events.append(ItemMoved(item_id, user_id, None, used=True))


def _item_held(state: State, item_id: str, holder_id: str) -> Item:
    item = state.items.get(item_id)
    if item is None:
        raise Rejected(ErrorCode.UNKNOWN_ITEM, f"no item {item_id!r}")
    if item.owner != holder_id:
        raise Rejected(ErrorCode.NOT_OWNER, f"{holder_id!r} does not hold {item_id!r}")
    return item
