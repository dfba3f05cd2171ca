"""One purge run: config -> for each rule and repository: list -> plan -> execute -> report.

The service owns the run's shape and its failure boundaries: one catalog listing per run; a
repository whose listing fails or is partial gets no deletions (and an error), while the others go
on (acr purge aborts everything instead); a rule with --max-deletions plans everything before
deleting anything. Repositories run concurrently, each worker holding one repository's listing.
Just before a repository's deletions the newest tags are read again: if a tag was pushed, moved or
retagged since the listing, the repository is planned again from a fresh listing (a plan is never
carried out on the strength of a stale listing; see docs/security.md for the remaining window).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Protocol, TypeVar

from purge.budget import BudgetSpent, run_deadline
from purge.config.rules import (
    MatchTimeout,
    Rule,
    did_you_mean,
    repository_matches,
    split_filter,
    unmatched_filters,
)
from purge.config.settings import Config
from purge.executor import describe_failure, execute
from purge.model import ManifestBody, Plan, RepositorySnapshot, Tag
from purge.planner import RepositoryPlanner, apply_repository_lock, check_blast_radius
from purge.registry.protocol import NotFound, Registry, RegistryError
from purge.report import Report

if TYPE_CHECKING:
    from purge.model import Manifest

#: Repositories processed at once; each holds one repository's listing in memory.
REPOSITORY_CONCURRENCY = 8
#: Repository names held from the catalog at most: far more than any registry holds, and a
#: bound on memory (tens of MB) and time when a catalog never ends and no budget is set.
MAX_REPOSITORIES = 1_000_000
#: Fresh listings a repository gets when its tags keep changing under the plan; then it is
#: skipped (with an error) until the next run.
MAX_REPLANS = 2

Progress = Callable[[str], None]


_Item = TypeVar("_Item")


class _OutOfTime(Exception):
    """The time budget ran out in the middle of a listing."""


class UnknownRule(ValueError):
    """A requested rule name is not configured."""


def select_rules(config: Config, names: Sequence[str] | None) -> tuple[Rule, ...]:
    """The configured rules named in `names` (all when None or empty), in configuration order."""
    if not names:
        return config.rules
    known = [rule.name for rule in config.rules]
    unknown = [name for name in dict.fromkeys(names) if name not in known]
    if unknown:
        hints = [f"{name!r}{did_you_mean(name, known, or_allowed=False)}" for name in unknown]
        raise UnknownRule(
            f"unknown rule{'s' if len(unknown) > 1 else ''} {', '.join(hints)}; "
            f"configured rules: {', '.join(repr(k) for k in known) or '(none)'}"
        )
    wanted = set(names)
    return tuple(rule for rule in config.rules if rule.name in wanted)


def is_dry_run(config: Config, requested: bool | None, rule: Rule | None = None) -> bool:
    """The one place that decides whether deletions are real: a rule's own `dryRun: true`
    always wins; then the caller's request (the HTTP endpoint asks for true unless told
    otherwise, the CLI's --dry-run); then PURGE_DRY_RUN."""
    if rule is not None and rule.dry_run is True:
        return True
    return config.dry_run if requested is None else requested


class RunHooks(Protocol):
    """What run history adds to a run (purge.history.journal.Journal): the facts a grace
    needs, and a write-ahead record before each repository's first delete (raise: no delete)."""

    untagged_at: Mapping[str, Mapping[str, datetime]]

    async def before_delete(self, plan: Plan) -> None: ...


async def run_purge(
    config: Config,
    *,
    rules: Sequence[Rule] | None = None,
    dry_run: bool | None = None,
    budget_seconds: float | None = None,
    now: datetime | None = None,
    registry: Registry | None = None,
    progress: Progress | None = None,
    hooks: RunHooks | None = None,
) -> Report:
    """Run `rules` (the caller's selection: `select_rules`, `rules_due`; default all) once."""
    if rules is None:
        rules = config.rules
    budget = budget_seconds if budget_seconds is not None else config.time_budget
    deadline = time.monotonic() + budget if budget is not None else None
    now = now or datetime.now(timezone.utc)
    owned = registry is None
    if registry is None:
        from purge.registry.acr import open_registry

        registry = open_registry(config.connection, max_concurrency=config.concurrency)
    report = Report(registry.login_server, is_dry_run(config, dry_run), datetime.now(timezone.utc))
    try:
        run = _PurgeRun(
            registry,
            report,
            now=now,
            deadline=deadline,
            budget=budget,
            progress=progress or (lambda _message: None),
            hooks=hooks,
        )
        with run_deadline(deadline):  # also bounds each request and each regex match
            await run.all_rules(rules, functools.partial(is_dry_run, config, dry_run))
    finally:
        if owned:
            await registry.close()
    report.finish(datetime.now(timezone.utc))
    return report


@dataclass(frozen=True)
class _Planned:
    plan: Plan
    #: The tags the plan was made from, to tell whether they changed before deleting.
    tags: tuple[Tag, ...] = ()


class _TagsChanged(Exception):
    """A tag was pushed, moved or deleted between the listing and the deletions."""


async def _check_tags_unchanged(registry: Registry, repository: str, listed: Sequence[Tag]) -> None:
    """Re-read the newest tags (`orderby=timedesc`) and raise _TagsChanged on any difference.

    A push or move gives a tag a lastUpdateTime at least as new as the newest one listed, so it
    shows among the first entries: reading stops at the first tag older than that, which is
    normally the first page. A tag that disappeared is only noticed among those entries; that
    is harmless, as deleting something already gone is a no-op.
    """
    known = {tag.name: tag for tag in listed}
    times = [tag.last_updated for tag in listed if tag.last_updated is not None]
    newest = max(times) if times else None
    seen: set[str] = set()
    async for tag in registry.list_tags(repository):
        if newest is not None and tag.last_updated is not None and tag.last_updated < newest:
            break
        before = known.get(tag.name)
        if before is None or (before.digest, before.last_updated) != (
            tag.digest,
            tag.last_updated,
        ):
            raise _TagsChanged(f"tag {tag.name!r} was pushed or moved since the listing")
        seen.add(tag.name)
    recent = {
        name for name, tag in known.items() if newest is not None and tag.last_updated == newest
    }
    if not recent <= seen:
        raise _TagsChanged(f"tag {sorted(recent - seen)[0]!r} changed since the listing")


class _PurgeRun:
    def __init__(
        self,
        registry: Registry,
        report: Report,
        *,
        now: datetime,
        deadline: float | None,
        budget: float | None,
        progress: Progress,
        hooks: RunHooks | None = None,
    ) -> None:
        self.hooks = hooks
        self.registry = registry
        self.report = report
        self.now = now
        self.deadline = deadline
        self.budget = budget
        self.progress = progress

    def out_of_time(self) -> bool:
        if self.deadline is None or time.monotonic() < self.deadline:
            return False
        self.mark_out_of_time()
        return True

    def mark_out_of_time(self) -> None:
        self.report.mark_incomplete(f"the time budget of {self.budget or 0:g}s ran out")

    async def all_rules(self, rules: Sequence[Rule], dry_run: Callable[[Rule], bool]) -> None:
        try:
            repositories: list[str] = []
            async for name in self.registry.list_repositories():
                if len(repositories) == MAX_REPOSITORIES:
                    raise RegistryError(
                        f"the catalog goes on past {MAX_REPOSITORIES:,} repositories; no "
                        "registry holds that many, so it is not read further"
                    )
                repositories.append(name)
        except BudgetSpent:
            self.progress("the time budget ran out while listing the catalog; nothing deleted")
            self.mark_out_of_time()
            return
        except Exception as exc:
            self.report.add_error("*", "_catalog", describe_failure(exc, "list repositories"))
            self.report.mark_incomplete("the repository catalog could not be listed")
            return
        self.progress(f"{len(repositories)} repositories in {self.registry.login_server}")
        for rule in rules:
            if self.out_of_time():
                return
            dry = dry_run(rule)
            self.report.start_rule(
                rule.name,
                dry,
                deletes_tags=not rule.untagged_only,
                deletes_manifests=rule.untagged or rule.untagged_only,
            )
            try:  # regexes run in a worker thread: a slow one must not stall the event loop
                matching = await asyncio.to_thread(self._matching, rule, repositories)
            except BudgetSpent:
                self.mark_out_of_time()
                return
            self.progress(f"rule {rule.name!r}: {len(matching)} repositories match")
            if rule.max_deletions is not None:
                await self._guarded_rule(rule, matching, dry)
            else:
                await self._for_each(matching, functools.partial(self._stream, rule, dry=dry))

    def _matching(self, rule: Rule, repositories: Sequence[str]) -> list[str]:
        """The repositories the rule covers (run in a worker thread); warns about filters that
        match none, which are most likely typos. BudgetSpent when the budget runs out."""
        if not rule.filters:
            # Only an --untagged-only rule may have no filter: it covers every repository.
            return list(repositories) if rule.untagged_only else []
        matching = []
        for name in repositories:
            try:
                if repository_matches(rule, name):
                    matching.append(name)
            except MatchTimeout as exc:  # skip (keep) that repository
                self.report.add_error(name, "filter", f"rule {rule.name!r}: {exc}", rule=rule.name)
        try:
            unmatched = unmatched_filters(rule, matching)
        except MatchTimeout:
            unmatched = []  # the timeouts are reported above
        for f in unmatched:
            names = [n for n in repositories if "*" not in n]
            hint = did_you_mean(split_filter(f.text)[0], names, or_allowed=False)
            self.report.add_warning(
                f"rule {rule.name!r}: filter {f.text!r} matches no repository{hint}: the "
                "repository part must match a whole name"
            )
        return matching

    async def _for_each(
        self, repositories: Sequence[str], work: Callable[[str], Awaitable[None]]
    ) -> None:
        """Run `work` per repository, REPOSITORY_CONCURRENCY at a time, none after the deadline."""
        queue = list(reversed(repositories))

        async def worker() -> None:
            while queue:
                if self.out_of_time():
                    return
                await work(queue.pop())

        await asyncio.gather(*(worker() for _ in range(min(REPOSITORY_CONCURRENCY, len(queue)))))

    async def _stream(self, rule: Rule, repository: str, *, dry: bool) -> None:
        for attempt in range(MAX_REPLANS + 1):
            planned = await self._plan(rule, repository)
            if planned is None:
                return
            verdict = await self._unchanged(planned, last_try=attempt == MAX_REPLANS)
            if verdict is True:
                await self._execute(planned, dry)
            if verdict is not False:
                return  # done, or the re-check failed: nothing more in this repository
            self.progress(f"{repository}: tags changed while planning; listing it again")

    async def _unchanged(self, planned: _Planned, *, last_try: bool = True) -> bool | None:
        """True when the plan's tags still stand, False when they changed (an error is
        reported if `last_try`), None when the re-check failed (reported): delete nothing."""
        plan = planned.plan
        if not plan.deletion_count:
            return True
        try:
            await _check_tags_unchanged(self.registry, plan.repository, planned.tags)
            return True
        except _TagsChanged as exc:
            reason = f"{exc}; nothing deleted in this repository, it is retried on the next run"
            if last_try:
                self.report.add_error(plan.repository, "verify", reason, rule=plan.rule)
            return False
        except Exception as exc:
            reason = f"{describe_failure(exc, 'verify tags')}; nothing deleted in this repository"
            self.report.add_error(plan.repository, "verify", reason, rule=plan.rule)
            return None

    async def _guarded_rule(self, rule: Rule, repositories: Sequence[str], dry: bool) -> None:
        planned: list[_Planned] = []

        async def collect(repository: str) -> None:
            one = await self._plan(rule, repository)
            if one is not None:
                planned.append(one)

        await self._for_each(repositories, collect)
        plans = [p.plan for p in planned]
        if not self.report.complete:
            # Not every repository was planned: the guard cannot judge a partial picture.
            self.report.add_blocked(plans, rule.name, "the time budget ran out while planning")
            return
        reason = check_blast_radius(plans, rule)
        if reason is not None:
            self.report.add_blocked(plans, rule.name, reason)
            self.progress(f"rule {rule.name!r}: blocked: {reason}")
            return
        by_repository = {p.plan.repository: p for p in planned}

        async def apply(repository: str) -> None:
            # The guard judged these plans: a changed repository is skipped, not planned again.
            if await self._unchanged(by_repository[repository]) is True:
                await self._execute(by_repository[repository], dry)

        await self._for_each(sorted(by_repository), apply)

    async def _plan(self, rule: Rule, repository: str) -> _Planned | None:
        """List the repository fully, fetch needed bodies, plan. None: nothing may be deleted."""
        try:
            tags: list[Tag] = await self._collect(self.registry.list_tags(repository))
            manifests: list[Manifest] = await self._collect(
                self.registry.list_manifests(repository)
            )
        except (_OutOfTime, BudgetSpent):
            self.progress(f"{repository}: the time budget ran out while listing; nothing deleted")
            self.mark_out_of_time()
            return None
        except NotFound:
            self.progress(f"{repository}: gone since the catalog was listed; nothing to do")
            return None
        except Exception as exc:
            self.report.add_error(
                repository,
                "listing",
                f"{describe_failure(exc, 'list')}; nothing deleted in this repository",
                rule=rule.name,
            )
            return None
        untagged_at = self.hooks.untagged_at.get(repository, {}) if self.hooks else {}
        snapshot = RepositorySnapshot(
            repository, tuple(tags), tuple(manifests), untagged_at=untagged_at
        )
        try:
            # Planning matches regexes: in a worker thread, so the event loop stays free.
            planner = await asyncio.to_thread(RepositoryPlanner, snapshot, rule, self.now)
            needed = planner.bodies_needed()
            bodies = await self._fetch_bodies(repository, sorted(needed))
            wanted = sorted(planner.referrers_needed())
            referrers = await self._fetch_referrers(repository, wanted)
            plan = await asyncio.to_thread(planner.plan, bodies, referrers)
            if plan.deletion_count:  # one read: the repository's own lock and visibility
                attributes = await self.registry.repository_attributes(repository)
                plan = apply_repository_lock(
                    plan,
                    rule,
                    delete_enabled=attributes.delete_enabled,
                    write_enabled=attributes.write_enabled,
                    list_enabled=attributes.list_enabled,
                )
        except NotFound:
            self.progress(f"{repository}: gone since the catalog was listed; nothing to do")
            return None
        except BudgetSpent:
            self.progress(f"{repository}: the time budget ran out while planning; nothing deleted")
            self.mark_out_of_time()
            return None
        except Exception as exc:  # regex timeout or planner failure: keep everything here
            self.report.add_error(
                repository,
                "plan",
                f"planning failed ({type(exc).__name__}: {exc}); "
                "nothing deleted in this repository",
                rule=rule.name,
            )
            return None
        self.progress(
            f"{repository}: {len(tags)} tags, {len(manifests)} manifests listed; "
            f"{plan.deletion_count} deletions planned"
        )
        return _Planned(plan, snapshot.tags)

    async def _collect(self, items: AsyncIterator[_Item]) -> list[_Item]:
        """A whole listing, abandoned (and closed) once the deadline passes: a repository of
        100,000 manifests must not hold an HTTP run past its budget only to delete nothing."""
        collected: list[_Item] = []
        try:
            async for item in items:
                collected.append(item)
                if self.out_of_time():
                    raise _OutOfTime
        finally:
            closing = getattr(items, "aclose", None)
            if closing is not None:
                await closing()
        return collected

    async def _fetch_referrers(
        self, repository: str, digests: Sequence[str]
    ) -> dict[str, tuple[str, ...] | None]:
        async def fetch(digest: str) -> tuple[str, tuple[str, ...] | None]:
            async with self.registry.slot():
                try:
                    return digest, await self.registry.list_referrers(repository, digest)
                except Exception:  # unreadable: the planner keeps that manifest
                    return digest, None

        return dict(await asyncio.gather(*map(fetch, digests)))

    async def _fetch_bodies(
        self, repository: str, digests: Sequence[str]
    ) -> dict[str, ManifestBody | None]:
        async def fetch(digest: str) -> tuple[str, ManifestBody | None]:
            async with self.registry.slot():
                try:
                    return digest, await self.registry.get_manifest(repository, digest)
                except Exception:  # unreadable: the planner keeps it and what it may reference
                    return digest, None

        return dict(await asyncio.gather(*map(fetch, digests)))

    async def _execute(self, planned: _Planned, dry: bool) -> None:
        plan = planned.plan
        if not dry and self.hooks is not None and plan.deletion_count:
            try:
                await self.hooks.before_delete(plan)
            except Exception as exc:  # not recorded: not deleted (fail closed)
                reason = f"{exc}; nothing deleted in this repository"
                self.report.add_error(plan.repository, "history", reason, rule=plan.rule)
                return
        result = await execute(
            plan,
            self.registry,
            dry_run=dry,
            deadline=self.deadline,
        )
        self.report.add_result(result)
        verb = "would delete" if dry else "deleted"
        self.progress(
            f"{plan.repository}: {verb} {len(result.done_tags)} tags, "
            f"{len(result.done_manifests)} manifests, {len(result.errors)} errors"
        )
