"""The board's columns, WIP, timing and bottleneck on a flow driven through the service."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from models.datasets import FASHION_MNIST_CLASSES
from service.flow.board import build_board
from service.flow.schemas import Board, Column
from service.flow.tasks import push_times
from service.quality.run import run_agreement
from service.studio.overlap import overlap_plan
from service.studio.queue_cap import release_budget
from tests.flow.conftest import WIP_LIMIT, Flow

SEEDS, ROUND = 20, 12


def board_at(flow: Flow, now: datetime | None = None) -> Board:
    with flow.ctx.sessions() as session:
        return build_board(session, flow.ctx, now=now)


def column(board: Board, name: str) -> Column:
    (found,) = [c for c in board.columns if c.name == name]
    return found


def counts(board: Board) -> dict[str, int]:
    return {c.name: c.count for c in board.columns}


def wrong(label: str) -> str:
    return FASHION_MNIST_CLASSES[(FASHION_MNIST_CLASSES.index(label) + 1) % 10]


def pushed_round(flow: Flow) -> tuple[list[int], int, dict[int, int], datetime]:
    """Seeds, then a round of `ROUND` pool images and one gold image; its plan's overlap."""
    images = flow.images()
    flow.seed(images["pool"][:SEEDS])
    chosen = images["pool"][SEEDS : SEEDS + ROUND] + images["gold"][:1]
    round_id, tasks = flow.push(chosen)
    gold = [image in images["gold"] for image in chosen]
    plan = overlap_plan([tasks[i] for i in chosen], gold, flow.guide.overlap, seed=round_id)
    with flow.ctx.sessions() as session:
        pushed_at = push_times(session)[round_id]
    return chosen, round_id, {i: plan.get(tasks[i], 1) for i in chosen}, pushed_at


def test_columns_partition_the_flow_with_reasons_and_oldest_items(flow: Flow) -> None:
    chosen, round_id, needs, pushed_at = pushed_round(flow)
    tasks = dict(zip(chosen, range(1000, 1000 + len(chosen)), strict=True))
    gold_image = chosen[-1]
    single = [i for i in chosen[:-1] if needs[i] == 1]
    overlapped = [i for i in chosen[:-1] if needs[i] == 2]
    assert needs[gold_image] == 2 and len(overlapped) == 1  # share 0.1 of 12 ordinary tasks

    first = pushed_at  # answers made before the agreement report below
    board = board_at(flow, pushed_at + timedelta(minutes=1))
    registered = len(flow.images()["pool"])
    assert counts(board) == {
        "unlabeled": registered - SEEDS - ROUND,
        "suggested": ROUND + 1,
        "in_review": 0,
        "confirmed": SEEDS,
        "flagged": 0,
    }
    oldest = column(board, "suggested").oldest
    assert oldest is not None and (oldest.image_id, oldest.task_id) == (chosen[0], 1000)
    assert oldest.url == "http://127.0.0.1:9/projects/1/data?task=1000"
    assert oldest.since == pushed_at and oldest.age_s == pytest.approx(60.0)

    for n, image in enumerate(single[:4]):  # four confirmed by their one annotator
        flow.answer(
            tasks[image],
            image,
            flow.true_label(image),
            annotator=7,
            at=first + n * 60 * timedelta(seconds=1),
        )
    flow.answer(
        tasks[overlapped[0]], overlapped[0], flow.true_label(overlapped[0]), annotator=7, at=first
    )
    flow.answer(
        tasks[gold_image], gold_image, "Bag", annotator=7, at=first
    )  # gold 00000: Ankle boot
    board = board_at(flow, pushed_at + timedelta(hours=1))
    assert counts(board)["suggested"] == ROUND + 1 - 6
    assert column(board, "in_review").detail == {
        "waiting_for_annotators": 1,
        "consensus_pending": 0,
    }
    assert column(board, "flagged").detail == {"gold_failure": 1, "disagreement": 0}
    assert column(board, "confirmed").detail == {"from_annotators": 4, "seed": SEEDS}
    assert counts(board)["confirmed"] == SEEDS + 4

    # The second annotator disagrees on the overlapped task: consensus pending, then the
    # agreement report fails it with every annotator in, and it is flagged for a person.
    image = overlapped[0]
    flow.answer(tasks[image], image, wrong(flow.true_label(image)), annotator=8, at=first)
    board = board_at(flow)
    assert column(board, "in_review").detail == {
        "waiting_for_annotators": 0,
        "consensus_pending": 1,
    }
    run_agreement(flow.ctx, act=False)
    board = board_at(flow)
    assert column(board, "flagged").detail == {"gold_failure": 1, "disagreement": 1}
    assert counts(board)["in_review"] == 0
    assert sum(counts(board).values()) == registered + 1  # every image once, the gold one too
    assert board.quality.agreement is not None and not board.quality.agreement.passed
    assert board.quality.agreement.url.endswith(
        f"/v1/reports/{board.quality.agreement.report_id}.html"
    )


def test_wip_per_annotator_against_the_guide_limit_and_the_queue_cap(flow: Flow) -> None:
    chosen, _, needs, pushed_at = pushed_round(flow)
    tasks = dict(zip(chosen, range(1000, 1000 + len(chosen)), strict=True))
    at = pushed_at + timedelta(minutes=1)
    # Annotator 7 answers both tasks that wait for a second annotator: 2 in progress.
    waiting = [i for i in chosen if needs[i] == 2]
    for image in waiting:
        flow.answer(tasks[image], image, flow.true_label(image), annotator=7, at=at)
    # Annotator 8 answers three single tasks (final at once) and one overlapped one.
    singles = [i for i in chosen if needs[i] == 1][:3]
    for image in singles:
        flow.answer(tasks[image], image, flow.true_label(image), annotator=8, at=at)
    board = board_at(flow, at + timedelta(minutes=1))
    rows = {row.annotator: row for row in board.wip.annotators}
    assert (rows[7].in_progress, rows[8].in_progress) == (2, 0)
    assert (rows[7].answers_recent, rows[8].answers_recent) == (2, 3)
    assert not rows[7].over_limit  # 2 is the limit, not over it

    flow.answer(tasks[waiting[0]], waiting[0], flow.true_label(waiting[0]), annotator=9, at=at)
    third = [i for i in chosen if needs[i] == 1][3]
    flow.answer(tasks[third], third, flow.true_label(third), annotator=7, at=at)
    board = board_at(flow, at + timedelta(minutes=1))
    rows = {row.annotator: row for row in board.wip.annotators}
    assert rows[7].in_progress == 1 and rows[9].in_progress == 0  # the pair is confirmed

    open_tasks = len(chosen) - 6
    assert board.wip.limit_per_annotator == WIP_LIMIT
    assert (board.wip.active_annotators, board.wip.open_tasks) == (3, open_tasks)
    assert board.wip.queue_limit == WIP_LIMIT * 3
    assert board.wip.queue_over_limit == (open_tasks > WIP_LIMIT * 3)
    with flow.ctx.sessions() as session:
        budget = release_budget(session, flow.guide, configured_annotators=0, now=at)
    assert budget == max(WIP_LIMIT * 3 - open_tasks, 0)


def test_an_annotator_over_the_limit_is_signalled(flow: Flow) -> None:
    images = flow.images()
    round_id, tasks = flow.push(images["gold"][:3])  # gold tasks always get two annotators
    with flow.ctx.sessions() as session:
        at = push_times(session)[round_id] + timedelta(minutes=1)
    for image in images["gold"][:3]:
        flow.answer(tasks[image], image, "Bag", annotator=7, at=at)
    board = board_at(flow, at)
    (row,) = board.wip.annotators
    # Gold answers that miss are flagged, and flagged items stay in progress until resolved.
    assert row.in_progress == 3 and row.over_limit
    # The queue cap counts unanswered tasks only: none are open, so one annotator's worth.
    assert board.wip.open_tasks == 0 and board.wip.queue_limit == WIP_LIMIT
    with flow.ctx.sessions() as session:
        assert release_budget(session, flow.guide, configured_annotators=0, now=at) == WIP_LIMIT


def test_lead_time_throughput_and_the_bottleneck(flow: Flow) -> None:
    chosen, _, needs, pushed_at = pushed_round(flow)
    tasks = dict(zip(chosen, range(1000, 1000 + len(chosen)), strict=True))
    singles = [i for i in chosen if needs[i] == 1]
    now = pushed_at + timedelta(hours=3)
    board = board_at(flow, now)
    assert board.bottleneck.stage == "annotate"  # nothing answered in the last hour: stalled
    stages = {s.stage: s for s in board.bottleneck.stages}
    assert stages["annotate"].stalled and stages["annotate"].queue == len(chosen)
    assert stages["push"].queue == 0 and stages["review"].queue == 0

    minutes = [10, 20, 70, 150, 170]  # lead times; the last two within the final hour
    for image, lead in zip(singles, minutes, strict=False):
        flow.answer(
            tasks[image],
            image,
            flow.true_label(image),
            annotator=7,
            at=pushed_at + timedelta(minutes=lead),
        )
    board = board_at(flow, now)
    timing = board.timing
    assert timing.lead_time_median_s == pytest.approx(70 * 60)
    assert timing.lead_time_p90_s == pytest.approx(162 * 60)
    assert timing.throughput_last_hour == 2 and timing.throughput_last_day == 5
    assert sum(b.confirmed for b in timing.hourly) == 5 == sum(b.confirmed for b in timing.daily)
    by_hour = {b.start: b for b in timing.hourly}
    for lead in minutes:
        done = pushed_at + timedelta(minutes=lead)
        start = done.replace(minute=0, second=0, microsecond=0)
        assert by_hour[start].confirmed >= 1
    # Annotate: 8 waiting, 2 first answers in the last hour: 4 h to clear. Review: empty.
    stages = {s.stage: s for s in board.bottleneck.stages}
    assert (stages["annotate"].queue, stages["annotate"].done_recent) == (len(chosen) - 5, 2)
    assert stages["annotate"].wait_s == pytest.approx((len(chosen) - 5) / 2 * 3600)
    assert board.bottleneck.stage == "annotate"

    # The overlapped tasks get their first answers now: review holds them, nobody finishes
    # them, so review is stalled and becomes the bottleneck.
    for image in [i for i in chosen if needs[i] == 2]:
        flow.answer(
            tasks[image], image, flow.true_label(image), annotator=7, at=now - timedelta(minutes=1)
        )
    board = board_at(flow, now)
    stages = {s.stage: s for s in board.bottleneck.stages}
    assert stages["review"].stalled and stages["review"].queue == 2
    assert board.bottleneck.stage == "review"
