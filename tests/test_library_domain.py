"""The library example's rules, one behavior at a time, with the testkit.

A member's borrow needs the copy's consent, which travels through a `Desk`: here a desk that
records what it was asked and refuses as a copy would, so the member's rules are tested alone
and the copy's rules alone. (tests/test_library_example.py runs the two together.)
"""

from __future__ import annotations

import pytest
from eventactors_examples.library.domain import (
    LOAN_LIMIT,
    AddCopy,
    BookBehavior,
    BookCopy,
    Borrow,
    Borrowed,
    CopyAdded,
    Lend,
    Lent,
    Loan,
    Member,
    Reconcile,
    Register,
    Registered,
    Return,
    Returned,
    TakeBack,
    TakenBack,
    bind_desk,
    member_keys,
)

import eventactors as ea
from eventactors.testing import BehaviorTestKit

ANN = "ann@example.org"


class RecordingDesk:
    """Lends every copy not in `lent_elsewhere`, refusing those as the copy's handler does."""

    def __init__(self, lent_elsewhere: dict[tuple[str, int], str] | None = None) -> None:
        self.lent_elsewhere = dict(lent_elsewhere or {})
        self.calls: list[tuple[str, str, int, str]] = []

    async def lend(self, isbn: str, copy: int, member_email: str) -> None:
        self.calls.append(("lend", isbn, copy, member_email))
        if (holder := self.lent_elsewhere.get((isbn, copy))) is not None:
            raise ea.Rejected("copy already lent", meta={"held_by": holder})

    async def take_back(self, isbn: str, copy: int, member_email: str) -> None:
        self.calls.append(("take_back", isbn, copy, member_email))


def member_kit(desk: RecordingDesk) -> BehaviorTestKit[Member]:
    return BehaviorTestKit(bind_desk(desk), entity_id="m-1", identifiers=member_keys)


@pytest.fixture
def desk() -> RecordingDesk:
    return RecordingDesk(lent_elsewhere={("isbn-9", 1): "bob@example.org"})


@pytest.fixture
def ann(desk: RecordingDesk) -> BehaviorTestKit[Member]:
    return member_kit(desk).given(Registered(ANN, "Ann"))


# -- members ----------------------------------------------------------------------------------


async def test_a_member_registers_once_with_an_email_and_a_name(desk):
    kit = member_kit(desk)
    (await kit.when(Register(" ", "Ann"))).then_rejected("a member needs an email and a name")
    (await kit.when(Register(ANN, "Ann"))).then_events(Registered(ANN, "Ann")).then_state(
        Member(ANN, "Ann")
    )
    (await kit.when(Register(ANN, "Other"))).then_rejected(
        "already registered", meta={"name": "Ann"}
    )


async def test_an_unregistered_member_borrows_nothing_and_asks_no_copy(desk):
    (await member_kit(desk).when(Borrow("isbn-1", 1))).then_rejected("not registered")
    assert desk.calls == []


async def test_a_borrow_asks_the_copy_first_and_records_the_loan(ann, desk):
    (await ann.when(Borrow("isbn-1", 1))).then_events(Borrowed("isbn-1", 1)).then_state(
        Member(ANN, "Ann", (Loan("isbn-1", 1),))
    )
    assert desk.calls == [("lend", "isbn-1", 1, ANN)]


async def test_the_copys_refusal_rejects_the_borrow_with_its_reason(ann, desk):
    (await ann.when(Borrow("isbn-9", 1))).then_rejected(
        "copy already lent", meta={"held_by": "bob@example.org"}
    ).then_no_events().then_revision(1)


async def test_the_loan_limit_is_checked_before_the_copy_is_asked(ann, desk):
    ann.given(*(Borrowed("isbn-1", copy) for copy in range(1, LOAN_LIMIT + 1)))
    (await ann.when(Borrow("isbn-2", 1))).then_rejected(f"loan limit of {LOAN_LIMIT} reached")
    assert desk.calls == []


async def test_the_same_copy_is_not_borrowed_twice(ann):
    ann.given(Borrowed("isbn-1", 1))
    (await ann.when(Borrow("isbn-1", 1))).then_rejected(
        "already borrowed", meta={"isbn": "isbn-1", "copy": 1}
    )


async def test_a_return_gives_the_copy_back_and_ends_the_loan(ann, desk):
    ann.given(Borrowed("isbn-1", 1), Borrowed("isbn-1", 2))
    (await ann.when(Return("isbn-1", 1))).then_events(Returned("isbn-1", 1)).then_state(
        Member(ANN, "Ann", (Loan("isbn-1", 2),))
    )
    assert desk.calls == [("take_back", "isbn-1", 1, ANN)]
    (await ann.when(Return("isbn-1", 1))).then_rejected("not borrowed by this member")


async def test_reconcile_takes_back_only_a_copy_the_member_never_recorded(ann, desk):
    ann.given(Borrowed("isbn-1", 1))
    (await ann.when(Reconcile("isbn-1", 1))).then_no_events()
    (await ann.when(Reconcile("isbn-1", 2))).then_no_events().then_revision(2)
    assert desk.calls == [("take_back", "isbn-1", 2, ANN)]


# -- book copies ------------------------------------------------------------------------------


@pytest.fixture
def shelved() -> BehaviorTestKit[BookCopy]:
    return BehaviorTestKit(BookBehavior, entity_id="b-1").given(CopyAdded("isbn-1", 1, "DDIA"))


async def test_a_copy_is_added_once_with_an_isbn_title_and_number():
    kit = BehaviorTestKit(BookBehavior)
    (await kit.when(AddCopy("isbn-1", 0, "DDIA"))).then_rejected(
        "a copy needs an isbn, a title and a number >= 1"
    )
    (await kit.when(AddCopy("isbn-1", 1, "DDIA"))).then_state(BookCopy("isbn-1", 1, "DDIA"))
    (await kit.when(AddCopy("isbn-1", 1, "Other"))).then_rejected(
        "copy already exists", meta={"title": "DDIA"}
    )


async def test_a_copy_is_lent_to_one_member_at_a_time(shelved):
    (await shelved.when(Lend(ANN))).then_events(Lent(ANN))
    (await shelved.when(Lend(ANN))).then_no_events().then_revision(2)  # a retried lend
    (await shelved.when(Lend("bob@example.org"))).then_rejected(
        "copy already lent", meta={"held_by": ANN}
    )


async def test_only_the_holder_takes_a_copy_back_and_repeats_are_harmless(shelved):
    shelved.given(Lent(ANN))
    (await shelved.when(TakeBack("bob@example.org"))).then_no_events()
    (await shelved.when(TakeBack(ANN))).then_events(TakenBack(ANN)).then_state(
        BookCopy("isbn-1", 1, "DDIA")
    )
    (await shelved.when(TakeBack(ANN))).then_no_events().then_revision(3)


async def test_a_copy_that_does_not_exist_lends_nothing():
    (await BehaviorTestKit(BookBehavior).when(Lend(ANN))).then_rejected("no such copy")
