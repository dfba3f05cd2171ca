"""The planner: PURE. Snapshot + rule + now -> Plan. Never touches the network.

One RepositoryPlanner per repository, rule and instant: it says which manifest bodies it needs
(`bodies_needed`), then plans with them (`plan`). Every deletion and every keep carries a
human-readable reason; the plan types are in purge.model.

Safety model: every manifest starts as either a *root* (something the rule may not delete:
tagged, too new, locked, unknown type, ...) or a *candidate*. Whatever a kept manifest needs
(children of an index, referrers of a subject, the subject of a referrer, the manifest a cosign
tag signs) is kept too, to a fixpoint in which the kept set only grows. When the planner cannot
see an edge (a body it could not read), it keeps every untagged manifest of the repository.
"""

from __future__ import annotations

import copy
import functools
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone

from purge.config import rules
from purge.config.rules import (
    MatchTimeout,
    Rule,
    TagFilter,
    format_duration,
    protected_by,
)
from purge.model import (
    KNOWN_MEDIA_TYPES,
    SUBJECT_CAPABLE_MEDIA_TYPES,
    Keep,
    Manifest,
    ManifestBody,
    ManifestDeletion,
    Plan,
    RepositorySnapshot,
    Tag,
    TagDeletion,
    cosign_subject,
    short_digest,
)

# --------------------------------------------------------------------------------------------
# Public API


def plan_repository(snapshot: RepositorySnapshot, rule: Rule, now: datetime) -> Plan:
    """Decide every deletion and keep for one repository; independent of listing order."""
    return RepositoryPlanner(snapshot, rule, now).plan()


def apply_repository_lock(
    plan: Plan, rule: Rule, *, delete_enabled: bool, write_enabled: bool, list_enabled: bool
) -> Plan:
    """The plan under the repository's own `changeableAttributes` (`GET /acr/v1/{repo}`).

    A repository hidden from the catalog (listEnabled false) is never purged: the real catalog
    does not list it, so a run only meets it where a registry lists it anyway, and its owner
    hid it on purpose. A locked one (deleteEnabled or writeEnabled false) keeps every planned
    deletion unless --include-locked, which unlocks the repository for the run and locks it
    again afterwards (the executor does both).
    """
    if not plan.deletion_count:
        return plan
    if not list_enabled:
        return _keep_all(plan, "repository hidden from the catalog (listEnabled false)")
    if delete_enabled and write_enabled:
        return plan
    if not rule.include_locked:
        return _keep_all(plan, "repository locked")
    return replace(plan, unlock_repository=(delete_enabled, write_enabled))


def _keep_all(plan: Plan, reason: str) -> Plan:
    kept = [Keep("tag", d.tag, d.digest, reason) for d in plan.tag_deletions]
    kept += [Keep("manifest", d.digest, d.digest, reason) for d in plan.manifest_deletions]
    return replace(
        plan, tag_deletions=(), manifest_deletions=(), kept=plan.kept + tuple(kept), children={}
    )


def check_blast_radius(plans: Sequence[Plan], rule: Rule) -> str | None:
    """The reason the rule's plans exceed `--max-deletions`, or None when within the limit."""
    foreign = sorted({p.rule for p in plans if p.rule != rule.name})
    if foreign:
        raise ValueError(
            f"check_blast_radius for rule {rule.name!r} got plans of other rules: {foreign}"
        )
    limit = rule.max_deletions
    if limit is None:
        return None
    planned = sum(p.deletion_count for p in plans)
    suffix = "nothing deleted for this rule"
    if limit.count is not None and planned > limit.count:
        return (
            f"rule {rule.name!r} would delete {planned} items, "
            f"more than --max-deletions {limit.count}: {suffix}"
        )
    if limit.percent is not None and planned:
        listed = sum(p.listed for p in plans)
        share = planned / listed * 100 if listed else float("inf")
        if share > limit.percent:
            return (
                f"rule {rule.name!r} would delete {planned} of {listed} listed items "
                f"({share:.4g}%), more than --max-deletions {limit.percent:g}%: {suffix}"
            )
    return None


# --------------------------------------------------------------------------------------------
# Wording

_MAX_REASON = 300


def short(digest: str) -> str:
    """`sha256:0123456789ab…`: a digest in a reason."""
    return short_digest(digest, "…")


@functools.lru_cache(maxsize=4096)
def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def _cap(reason: str) -> str:
    return reason if len(reason) <= _MAX_REASON else reason[: _MAX_REASON - 1] + "…"


def _names(ordered: Sequence[str]) -> str:
    return ", ".join(ordered[:3]) + (f" and {len(ordered) - 3} more" if len(ordered) > 3 else "")


# --------------------------------------------------------------------------------------------
# Ordering: newest first by lastUpdateTime in full 100 ns precision (missing times last); ties
# in the registry's timedesc listing order, as acr purge keeps them, then by name/digest.

_NO_POSITION = 1 << 62
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _ticks(moment: datetime, ticks: int | None) -> int:
    return ticks if ticks is not None else (moment - _EPOCH) // timedelta(microseconds=1) * 10


def _tag_key(tag: Tag) -> tuple[bool, int, int, str, str]:
    lu = tag.last_updated
    newest = -_ticks(lu, tag.updated_ticks) if lu else 0
    listed = tag.listed if tag.listed is not None else _NO_POSITION
    return (lu is None, newest, listed, tag.name, tag.digest)


def _manifest_key(manifest: Manifest) -> tuple[bool, int, str]:
    lu = manifest.last_updated
    return (lu is None, -_ticks(lu, manifest.updated_ticks) if lu else 0, manifest.digest)


def _dedupe_manifests(manifests: Iterable[Manifest]) -> list[Manifest]:
    """One entry per digest; a repeated digest (paging race) resolves the same way always."""
    by_digest: dict[str, Manifest] = {}
    for m in manifests:
        seen = by_digest.get(m.digest)
        if seen is None or repr(m) < repr(seen):
            by_digest[m.digest] = m
    return sorted(by_digest.values(), key=_manifest_key)


def _dedupe_tags(tags: Iterable[Tag]) -> list[Tag]:
    by_name: dict[str, Tag] = {}
    for t in tags:
        seen = by_name.get(t.name)
        if seen is None or _tag_key(t) < _tag_key(seen):
            by_name[t.name] = t
    return sorted(by_name.values(), key=_tag_key)


# --------------------------------------------------------------------------------------------
# The planner


@dataclass
class _Cosign:
    """A cosign-style tag that follows the manifest it signs instead of its own age."""

    tag: Tag
    subject: str
    kind: str


class RepositoryPlanner:
    """One repository, one rule, one instant. Phases: select and tags (at construction), then
    manifests (`plan`). The service makes one per repository listing and asks it twice: which
    bodies it needs, then the plan with them; the tag phase, the bulk of the work on big
    repositories, runs once."""

    def __init__(self, snapshot: RepositorySnapshot, rule: Rule, now: datetime) -> None:
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError("planner: `now` must be timezone-aware (UTC), got a naive datetime")
        if rule.keep < 0:
            raise ValueError(f"rule {rule.name!r}: keep must be 0 or more, got {rule.keep}")
        self.snapshot = snapshot
        self.rule = rule
        self.now = now
        self.repo = snapshot.name
        self.ago = format_duration(rule.ago)
        self.cutoff = now - rule.ago
        self.bodies: Mapping[str, ManifestBody | None] = snapshot.bodies
        self.referrers: Mapping[str, tuple[str, ...] | None] = snapshot.referrers
        self.errors: list[str] = []
        self.tags = _dedupe_tags(snapshot.tags)
        self.manifests = _dedupe_manifests(snapshot.manifests)
        self.by_digest = {m.digest: m for m in self.manifests}
        # Which tag names point at each digest, by either listing (fail closed on disagreement).
        self.names_of: dict[str, set[str]] = {}
        self.digests_of: dict[str, set[str]] = {}
        names_of, digests_of = self.names_of, self.digests_of
        links = [(t.name, t.digest) for t in snapshot.tags]
        links += [(name, m.digest) for m in self.manifests for name in m.tags]
        for name, digest in links:
            if digest in names_of:
                names_of[digest].add(name)
            else:
                names_of[digest] = {name}
            if name in digests_of:
                digests_of[name].add(digest)
            else:
                digests_of[name] = {digest}
        self.listing_complete = all(t.digest in self.by_digest for t in self.tags)
        self.can_delete_manifests = rule.untagged or rule.untagged_only
        # Tag phase results.
        self.tag_keeps: list[Keep] = []
        self.tag_deletes: dict[str, tuple[Tag, str]] = {}  # name -> (tag, reason)
        self.cosign: dict[str, _Cosign] = {}  # pending: follows its subject
        self.matching_filters: tuple[TagFilter, ...] = ()
        self.selected = self._select()
        if self.selected and not rule.untagged_only:
            self._plan_tags()

    # -- selection and tags ------------------------------------------------------------------

    def _select(self) -> bool:
        """Does the rule cover this repository? Also keeps the filters that apply here."""
        if self.rule.untagged_only and not self.rule.filters:
            return True
        try:
            self.matching_filters = rules.filters_for(self.rule, self.repo)
        except MatchTimeout as exc:
            self.errors.append(f"repository filter: {exc}; nothing planned for this repository")
            return False
        return bool(self.matching_filters)

    def _too_new(self, moment: datetime) -> bool:
        return not moment < self.cutoff

    def _plan_tags(self) -> None:
        rule = self.rule
        ranked: list[Tag] = []
        for tag in self.tags:
            try:
                if not rules.tag_search(self.matching_filters, tag.name):
                    continue  # outside the filter: never a candidate, never reported
                pattern = protected_by(rule, tag.name)
            except MatchTimeout as exc:
                self._keep_tag(tag, f"kept: {exc}")
                self.errors.append(f"tag {tag.name}: {exc}; kept")
                continue
            lu = tag.last_updated
            if pattern is not None:
                self._keep_tag(tag, f"protected by {pattern}")
            elif lu is None:
                self._keep_tag(tag, "no lastUpdateTime")
            elif self._too_new(lu):
                self._keep_tag(tag, f"newer than {self.ago} (updated {_iso(lu)})")
            elif tag.locked and not rule.include_locked:
                self._keep_tag(tag, "locked")
            elif not self._route_cosign(tag):
                ranked.append(tag)
        for position, tag in enumerate(ranked):
            if position < rule.keep:
                self._keep_tag(tag, f"kept by --keep {rule.keep}")
            else:
                assert tag.last_updated is not None
                reason = f"older than {self.ago} (updated {_iso(tag.last_updated)})"
                self.tag_deletes[tag.name] = (tag, reason)

    def _route_cosign(self, tag: Tag) -> bool:
        """True when a deletable cosign tag is decided by its subject, not by age and --keep."""
        signed = cosign_subject(tag.name)
        if signed is None:
            return False
        subject, kind = signed
        if subject in self.by_digest:
            self.cosign[tag.name] = _Cosign(tag, subject, kind)
            return True
        if not self.listing_complete:
            self._keep_tag(
                tag,
                f"{kind} of {short(subject)}, which the incomplete manifest listing "
                "cannot confirm is gone",
            )
            return True
        return False  # the signed manifest is gone: an ordinary tag

    def _keep_tag(self, tag: Tag, reason: str) -> None:
        self.tag_keeps.append(Keep("tag", tag.name, tag.digest, reason))

    # -- manifests: classification -----------------------------------------------------------

    def _body(self, digest: str) -> ManifestBody | None:
        return self.bodies.get(digest)

    @staticmethod
    def _possible_referrer(m: Manifest) -> bool:
        """Any OCI manifest may carry a `subject`, whatever its config: only its body says."""
        return m.media_type in SUBJECT_CAPABLE_MEDIA_TYPES

    def _tagged(self, digest: str, deleted: set[str]) -> bool:
        """Does a tag that is not deleted point at `digest` (by either listing)?"""
        names = self.names_of.get(digest)
        return names is not None and not names <= deleted

    def _classify(self, m: Manifest, deleted: set[str]) -> str | None:
        """Why `m` is a root (not deletable by this rule), or None for a deletion candidate."""
        names = self.names_of.get(m.digest)
        if names and not names <= deleted:
            return f"tagged {min(names - deleted)}"
        lu = m.last_updated
        if lu is None:
            return "no lastUpdateTime"
        if self._too_new(lu):
            return f"newer than {self.ago} (updated {_iso(lu)})"
        if m.media_type not in KNOWN_MEDIA_TYPES:
            return f"unknown media type {m.media_type!r}"
        if m.locked and not self.rule.include_locked:
            return "locked"
        return None

    def _grace(self, m: Manifest) -> str | None:
        """Why the rule's grace holds back deletion candidate `m`, or None.

        Its tags all go in this run: the grace starts now. Untagged by an earlier run of this
        project (the run history's `untagged_at`): it waits until the grace after that. A
        manifest untagged by anyone else has no record and no grace.
        """
        grace = self.rule.grace
        if grace is None:
            return None
        if self.names_of.get(m.digest):
            return (
                f"grace: its last tag is deleted in this run; deleted no earlier than "
                f"{_iso(self.now + grace)}"
            )
        gone = self.snapshot.untagged_at.get(m.digest)
        if gone is not None and self.now < gone + grace:
            return (
                f"grace: untagged by this project at {_iso(gone)}; deleted no earlier than "
                f"{_iso(gone + grace)}"
            )
        return None

    def _untagged_candidates_exist(self) -> bool:
        deleted = set(self.tag_deletes) | set(self.cosign)
        return any(self._classify(m, deleted) is None for m in self.manifests)

    def bodies_needed(self) -> frozenset[str]:
        """Digests whose manifest body the plan needs and the listing lacks (request economy).

        Nothing when the rule cannot delete manifests or the repository has no manifest that
        could be deleted; otherwise indexes listed without references, manifests of unknown
        media type, possible referrers, and tag targets missing from the manifest listing.
        Digests already in the snapshot's bodies (fetched, or failed: None) are not asked for.
        """
        return frozenset(d for d in self._reads()[0] if d not in self.snapshot.bodies)

    def referrers_needed(self) -> frozenset[str]:
        """Digests whose referrers (`GET /v2/{repo}/referrers/{digest}`) the plan needs."""
        return frozenset(d for d in self._reads()[1] if d not in self.snapshot.referrers)

    def _reads(self) -> tuple[set[str], set[str]]:
        """(bodies, referrers) to read, whichever way costs fewer reads.

        Whether a manifest has a `subject` is read, never inferred. Either every OCI manifest's
        body is read (a kept referrer keeps its subject; a deleted subject takes its referrers
        along), or only the candidates' bodies (their own subject) plus, for each candidate, the
        referrers API (who would go with it). The second wins when few of many manifests may
        be deleted, e.g. `--untagged` on a repository of thousands of tagged OCI images.
        """
        if not (self.selected and self.can_delete_manifests):
            return set(), set()
        deleted = set(self.tag_deletes) | set(self.cosign)
        candidates = [m for m in self.manifests if self._classify(m, deleted) is None]
        if not candidates:
            return set(), set()
        common = {
            m.digest
            for m in self.manifests
            if (m.is_index and m.references is None) or m.media_type not in KNOWN_MEDIA_TYPES
        }
        common |= {
            t.digest
            for t in self.tags
            if t.digest not in self.by_digest and t.name not in self.tag_deletes
        }
        every_body = common | {m.digest for m in self.manifests if self._possible_referrer(m)}
        few_bodies = common | {m.digest for m in candidates if self._possible_referrer(m)}
        referrers = {m.digest for m in candidates}
        known = self.snapshot.bodies
        cost_every = len(every_body - known.keys())
        cost_few = len(few_bodies - known.keys()) + len(referrers - self.snapshot.referrers.keys())
        if cost_few < cost_every:
            return few_bodies, referrers
        return every_body, set()

    # -- manifests: closure ------------------------------------------------------------------

    def plan(
        self,
        bodies: Mapping[str, ManifestBody | None] | None = None,
        referrers: Mapping[str, tuple[str, ...] | None] | None = None,
    ) -> Plan:
        """The plan, with `bodies` (digest -> body, None when unreadable) and `referrers`
        (subject -> referrer digests, None when unreadable) added to the snapshot's. The
        planner itself is left as it was: it may be asked again."""
        run = copy.copy(self)
        run.bodies = {**self.snapshot.bodies, **bodies} if bodies else self.snapshot.bodies
        run.referrers = (
            {**self.snapshot.referrers, **referrers} if referrers else self.snapshot.referrers
        )
        run.errors = list(self.errors)
        return run._plan()

    def _plan(self) -> Plan:
        manifest_deletions: list[ManifestDeletion] = []
        manifest_keeps: list[Keep] = []
        cosign_keeps: dict[str, str] = {}
        deleted_manifests: set[str] = set()
        if self.selected and self.can_delete_manifests:
            graph = _Graph(self)
            graph.close()
            deleted_manifests = graph.deleted
            manifest_deletions = graph.deletions()
            manifest_keeps = graph.keeps()
            cosign_keeps = graph.cosign_keeps
        else:
            # No manifest is deleted: every signed manifest stays, so its signatures stay.
            cosign_keeps = {
                name: f"{c.kind} of {short(c.subject)}" for name, c in self.cosign.items()
            }
        return Plan(
            repository=self.repo,
            rule=self.rule.name,
            tag_deletions=tuple(self._tag_deletions(cosign_keeps, deleted_manifests)),
            manifest_deletions=tuple(manifest_deletions),
            kept=tuple(self._tag_keep_list(cosign_keeps) + manifest_keeps),
            errors=tuple(self.errors),
            listed=len(self.snapshot.tags) + len(self.snapshot.manifests),
            children=self._index_children({d.digest for d in manifest_deletions}),
        )

    def _index_children(self, deleted: set[str]) -> dict[str, tuple[str, ...]]:
        """Deleted index digest -> its children that are deleted too (listing and bodies)."""
        children: dict[str, tuple[str, ...]] = {}
        for m in self.manifests:
            if m.digest not in deleted:
                continue
            kids = list(m.references or ())
            body = self._body(m.digest)
            if body is not None:
                kids += [c for c in body.children if c not in kids]
            kids = [c for c in kids if c in deleted and c != m.digest]
            if kids:
                children[m.digest] = tuple(kids)
        return children

    def _tag_keep_list(self, cosign_keeps: Mapping[str, str]) -> list[Keep]:
        keeps = list(self.tag_keeps)
        keeps += [
            Keep("tag", name, self.cosign[name].tag.digest, reason)
            for name, reason in cosign_keeps.items()
        ]
        order = {t.name: i for i, t in enumerate(self.tags)}
        return sorted(keeps, key=lambda k: order[k.ref])

    def _tag_deletions(
        self, cosign_keeps: Mapping[str, str], deleted_manifests: set[str]
    ) -> list[TagDeletion]:
        decided: dict[str, str] = {name: reason for name, (_, reason) in self.tag_deletes.items()}
        for name, c in self.cosign.items():
            if name not in cosign_keeps:
                decided[name] = f"{c.kind} of deleted {short(c.subject)}"
        result = []
        for tag in self.tags:  # newest first
            reason = decided.get(tag.name)
            if reason is None:
                continue
            # One request for a tag and its manifest, unless the listings disagree on where
            # the tag points (then deleting that manifest might not remove it).
            removed_with = None
            if len(self.digests_of[tag.name]) == 1 and tag.digest in deleted_manifests:
                removed_with = tag.digest
            locks = (tag.delete_enabled, tag.write_enabled)
            result.append(
                TagDeletion(tag.name, tag.digest, reason, tag.locked, removed_with, locks)
            )
        return result


class _Graph:
    """The kept-set fixpoint over child, referrer, subject and cosign edges."""

    def __init__(self, planner: RepositoryPlanner) -> None:
        self.p = planner
        self.deleted_tags: set[str] = set(planner.tag_deletes) | set(planner.cosign)
        self.kept: dict[str, str] = {}  # digest -> reason (insertion order = discovery order)
        self.candidates: list[Manifest] = []
        self.queue: deque[str] = deque()
        self.cosign_keeps: dict[str, str] = {}
        self.pending_by_subject: dict[str, list[str]] = {}
        for name, c in planner.cosign.items():
            self.pending_by_subject.setdefault(c.subject, []).append(name)
        self.referrers_of: dict[str, list[str]] = {}
        #: Referrer digest -> subject, as the referrers API answered (for bodies not read).
        self.subject_of: dict[str, str] = {}
        self.deleted: set[str] = set()

    def _subject(self, digest: str) -> str | None:
        body = self.p._body(digest)
        return body.subject if body is not None else self.subject_of.get(digest)

    def _children(self, digest: str) -> list[str]:
        m = self.p.by_digest.get(digest)
        children = list(m.references or ()) if m is not None else []
        body = self.p._body(digest)
        if body is not None:
            children += [c for c in body.children if c not in children]
        return children

    def _mark(self, digest: str, reason: str) -> None:
        if digest in self.kept:
            return
        self.kept[digest] = _cap(reason)
        self.queue.append(digest)

    def close(self) -> None:
        p = self.p
        for m in p.manifests:
            subject = self._subject(m.digest)
            if subject is not None:
                self.referrers_of.setdefault(subject, []).append(m.digest)
        unreadable_referrers: dict[str, str] = {}
        for subject, found in p.referrers.items():
            if found is None:
                unreadable_referrers[subject] = "cannot tell its referrers: the read failed"
                p.errors.append(f"manifest {subject}: referrers unavailable, kept")
                continue
            known = self.referrers_of.setdefault(subject, [])
            for referrer in found:
                self.subject_of.setdefault(referrer, subject)
                if referrer not in known:
                    known.append(referrer)
                if referrer not in p.by_digest:  # deleting the subject would take it along
                    unreadable_referrers.setdefault(
                        subject, f"its referrer {short(referrer)} is not in the listing"
                    )
        for m in p.manifests:
            reason = p._classify(m, self.deleted_tags) or unreadable_referrers.get(m.digest)
            subject = self._subject(m.digest)
            if reason is None and p._possible_referrer(m) and p._body(m.digest) is None:
                reason = "cannot tell its subject: manifest body unavailable"
                p.errors.append(f"manifest {m.digest}: body unavailable, cannot tell its subject")
            elif reason is None and subject is not None and subject not in p.by_digest:
                reason = f"its subject {short(subject)} is not in the listing"
            if reason is None:
                reason = p._grace(m)
            if reason is None:
                self.candidates.append(m)
            else:
                self._mark(m.digest, reason)
        # Tag targets the manifest listing missed: kept, and walked if their body is known.
        for tag in p.tags:
            if tag.digest not in p.by_digest and tag.name not in self.deleted_tags:
                self._mark(tag.digest, f"tagged {tag.name}")
        self._walk()
        if p.rule.untagged_only and p.rule.keep:
            self._keep_newest_untagged(p.rule.keep)
        self.deleted = {m.digest for m in self.candidates if m.digest not in self.kept}
        problem = self._unknown_edge() if self.deleted else None
        if problem is not None:
            p.errors.append(f"{problem}: no untagged manifest deleted in this repository")
            for m in self.candidates:
                self.kept.setdefault(m.digest, f"not deleted: {problem}")
            self.deleted = set()
            for subject, names in self.pending_by_subject.items():
                for name in names:
                    c = p.cosign[name]
                    self.cosign_keeps.setdefault(name, f"{c.kind} of {short(subject)}")

    def _keep_newest_untagged(self, keep: int) -> None:
        """`--untagged-only --keep N`: the N newest deletable untagged manifests stay (acr purge).

        Counted after the graph kept what it must, so a child of a kept index does not use up
        the count; what a kept one references stays with it.
        """
        deletable = [m for m in self.candidates if m.digest not in self.kept]  # newest first
        for m in deletable[:keep]:
            self._mark(m.digest, f"kept by --keep {keep} (newest untagged)")
        self._walk()

    def _walk(self) -> None:
        p = self.p
        while self.queue:
            digest = self.queue.popleft()
            label = self.kept[digest]
            for child in self._children(digest):
                if child in p.by_digest:
                    self._mark(child, f"child of {short(digest)} ({label})")
            for referrer in self.referrers_of.get(digest, ()):
                self._mark(referrer, f"referrer of {short(digest)} ({label})")
            subject = self._subject(digest)
            if subject is not None and subject in p.by_digest:
                self._mark(subject, f"subject of kept referrer {short(digest)}")
            for name in self.pending_by_subject.pop(digest, ()):
                c = p.cosign[name]
                self.cosign_keeps[name] = f"{c.kind} of {short(digest)}"
                self.deleted_tags.discard(name)
                for target in sorted(p.digests_of[name]):
                    self._mark(target, f"tagged {name}")

    def _unknown_edge(self) -> str | None:
        """Why some kept manifest may reach something we cannot see, or None."""
        p = self.p
        for digest in self.kept:
            m = p.by_digest.get(digest)
            body = p._body(digest)
            if body is not None:
                continue
            media_type = m.media_type if m is not None else None
            if m is None or media_type not in KNOWN_MEDIA_TYPES:
                return (
                    f"kept manifest {short(digest)} has unknown media type {media_type!r} "
                    "and its body is unavailable"
                )
            if m.is_index and m.references is None:
                return f"kept index {short(digest)} has unknown children (body unavailable)"
            if p._possible_referrer(m) and not all(d in p.referrers for d in self.deleted):
                # Its subject may be a deletion candidate: deleting that would take it along
                # (unless the referrers API listed every deleted candidate's referrers).
                return (
                    f"kept manifest {short(digest)} may be a referrer but its body is unavailable"
                )
        return None

    # -- output ------------------------------------------------------------------------------

    def _final_deleted_tags(self) -> set[str]:
        return set(self.p.tag_deletes) | {n for n in self.p.cosign if n not in self.cosign_keeps}

    def keeps(self) -> list[Keep]:
        """Kept manifests the rule could have deleted: those without a surviving tag."""
        deleted_tags = self._final_deleted_tags()
        return [
            Keep("manifest", m.digest, m.digest, self.kept[m.digest])
            for m in self.p.manifests
            if m.digest in self.kept and not self.p._tagged(m.digest, deleted_tags)
        ]

    def deletions(self) -> list[ManifestDeletion]:
        p = self.p
        result = []
        for m in self.candidates:  # newest first
            if m.digest not in self.deleted:
                continue
            names = p.names_of.get(m.digest)
            tags = tuple(sorted(names)) if names else ()
            subject = self._subject(m.digest)
            unlock = m.locked
            removed_with = None
            if subject is not None and subject in self.deleted:
                reason = f"referrer of deleted {short(subject)}"
                if not unlock:  # a locked one is unlocked and deleted by its own request
                    removed_with = subject
                    reason += " (removed by the registry)"
            else:
                assert m.last_updated is not None
                age = f"older than {p.ago} (updated {_iso(m.last_updated)})"
                reason = f"tags deleted ({_names(tags)}), {age}" if tags else f"untagged, {age}"
            locks = (m.delete_enabled, m.write_enabled)
            result.append(
                ManifestDeletion(
                    m.digest,
                    tags,
                    m.size,
                    reason,
                    unlock,
                    removed_with,
                    locks,
                    media_type=m.media_type,
                )
            )
        return result
