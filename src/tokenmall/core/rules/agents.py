"""Regional agents (区域代理, SPEC v2 §10): register and end them, and the commissions a cash
order with a region pays them from the platform's margin (the pool, EP and quotas do not
change)."""

from tokenmall.core.accounts import Agent
from tokenmall.core.effects import Effects, Field, Registered, StatusChanged
from tokenmall.core.errors import ErrorCode, Rejected
from tokenmall.core.fields import Command, check_region, json_int
from tokenmall.core.rules.cash import credit_cash
from tokenmall.core.state import State
from tokenmall.core.units import Fen

COMMISSIONS, CASH = Field.COMMISSIONS, Field.CASH
PREFIXES = (2, 4, 6)  # province, city, district: the region's leading digits


def register_agent(state: State, command: Command, fx: Effects) -> None:
    agent_id = command["agent"]
    region = check_region(command["region"])
    until = json_int(command["until"], 0, None, "until") if "until" in command else None
    if state.account_exists(agent_id):
        raise Rejected(ErrorCode.DUPLICATE_ACCOUNT, f"account {agent_id!r} exists")
    if region in state.region_agents:
        raise Rejected(ErrorCode.REGION_TAKEN, f"region {region} has an agent")
    state.agents[agent_id] = Agent(id=agent_id, region=region, until=until)
    state.region_agents[region] = agent_id
    fx.events.append(Registered(agent_id, "agent"))


def end_agent(state: State, command: Command, fx: Effects) -> None:
    agent_id = command["agent"]
    agent = state.agents.get(agent_id)
    if agent is None:
        raise Rejected(ErrorCode.UNKNOWN_AGENT, f"no agent {agent_id!r}")
    if agent.ended:
        raise Rejected(ErrorCode.INVALID_STATE, "the agent has ended already")
    agent.ended = True
    del state.region_agents[agent.region]
    fx.events.append(StatusChanged(agent_id, "ended"))


def pay_commissions(
    state: State, region: str, amount_fen: Fen, fx: Effects
) -> tuple[tuple[str, Fen], ...]:
    """A cash order's commissions: floor(amount × rate) to each agent holding the order's
    province, city and district that earns today; what was paid, for a refund."""
    paid: list[tuple[str, Fen]] = []
    for digits, (numerator, denominator) in zip(PREFIXES, state.rates.agent, strict=True):
        if not numerator:
            continue
        agent_id = state.region_agents.get(region[:digits])
        if agent_id is None:
            continue
        agent = state.agents[agent_id]
        if not agent.earns_on(state.day):
            continue
        commission_fen = amount_fen * numerator // denominator
        if commission_fen:
            agent.commissions += commission_fen
            state.agent_commissions += commission_fen
            fx.postings.append((agent_id, COMMISSIONS, commission_fen))
            credit_cash(state, agent, commission_fen, fx)
            paid.append((agent_id, commission_fen))
    return tuple(paid)


def take_back_commissions(
    state: State, commissions: tuple[tuple[str, Fen], ...], fx: Effects
) -> None:
    """A refund takes each commission back as far as the agent's cash allows (frozen and
    ended agents alike); the rest stays with the agent."""
    for agent_id, commission_fen in commissions:
        agent = state.agents[agent_id]
        take_fen = min(commission_fen, agent.cash)
        if take_fen:
            agent.cash -= take_fen
            agent.commissions -= take_fen
            state.agent_commissions -= take_fen
            state.cash_owed -= take_fen
            fx.postings += ((agent_id, CASH, -take_fen), (agent_id, COMMISSIONS, -take_fen))
