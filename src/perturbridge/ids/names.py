"""Compound-name normalization: one name, a sequence of progressively looser keys.

A compound name is turned into a fixed list of **tiers**, each a key (or, from the
``parenthetical`` tier on, several keys: the main name and the names given in
parentheses). Reference synonyms and query names go through the same function, and a
query is compared with the reference tier by tier: the first tier at which a query key
equals a reference key decides, and that tier's name is the match type.

Rules, in order
---------------
``prepare`` (every tier starts here)
    Unicode NFKC; case folding; Greek letters spelled out (``α`` → ``alpha``, ``β`` →
    ``beta``, …, the micro sign is ``mu``); accents dropped; every unicode dash and minus
    sign becomes ``-``; primes become ``'``; the middle dot ``·`` becomes a space;
    optical-rotation signs become words (``(+)`` → ``(plus)``, ``(-)`` → ``(minus)``,
    ``(±)``/``(+/-)`` → ``(rac)``); whitespace collapses; surrounding quotes go.
``synonym`` (tier 0)
    The prepared string itself (an exact, case-insensitive match).
``normalized_name`` (tier 1)
    Only letters and digits are kept: hyphens, spaces, underscores, commas, dots,
    brackets and parentheses are dropped (``Trichostatin-A`` = ``trichostatin a``).
``desalted`` (tier 2)
    Salt, hydrate and solvate words are dropped: counter-ions that never form esters
    (``hydrochloride``, ``HCl``, ``2HCl``, ``mesylate``, ``tosylate``, ``maleate``,
    ``citrate``, ``sodium``, ``potassium``, ``monohydrate``, ``salt``, ``free base``, …)
    anywhere, and any parenthesized group that consists only of salt, hydrate, solvate
    or solvent words and numbers (``Vinblastine (sulfate)``, ``Trametinib (DMSO_TF
    solvate)``, ``Edoxaban (tosylate monohydrate)``, ``Dapagliflozin ((2S)-1,2-
    propanediol, hydrate)``). A name is never emptied: if only salt words remain the
    name is kept whole (``sodium chloride``), and so is an alkyl ester
    (``dimethyl fumarate``: nothing but ``dimethyl`` would remain).
``parenthetical`` (tier 3)
    Parenthesized groups other than stereo descriptors are dropped from the desalted
    name (the main key), and each comma-separated item inside them becomes an extra
    key (``Navitoclax (ABT-263)`` → ``navitoclax`` and ``abt263``). Groups containing
    ``%`` are notes, never names.
``desalted_loose`` (tier 4)
    Also drops anions that are often covalent esters rather than salts (``acetate``,
    ``succinate``, ``propionate``, ``phosphate``, ``sulfate``, …) outside parentheses,
    and trailing acid counter-ions (``L-(+)-tartaric acid``), unless the name also has
    a cation word (``estrone sulfate (potassium)``, ``prednisolone sodium phosphate``:
    the anion is part of the molecule). Weaker: ``abiraterone acetate`` is not
    ``abiraterone``, so a full-name match at an earlier tier wins.
``acid_form`` (tier 5)
    When a cation word (``sodium``, ``potassium``, ``calcium``, …) was present, a final
    ``…ate`` becomes ``…ic acid`` (``sodium valproate`` → ``valproic acid``).
``stereo_stripped`` (tier 6)
    Stereo descriptors are dropped (``(R)-``, ``(S)-``, ``(plus)``, ``(rac)``, ``L-``,
    ``D-``, ``DL-``, ``cis``, ``trans``, ``(E)``, ``(1R,2S)``, …), a Greek letter after
    a locant goes (``18β`` → ``18``, which also meets vendor files where ``β`` was lost
    as ``?``), and a name glued to ``levo``/``dextro``/``dex``/``es`` gets an extra key
    without it when six letters remain (``levobupivacaine`` → ``bupivacaine``), and a
    leading ``alpha``/``beta`` without a locant goes (``beta-estradiol`` →
    ``estradiol``). A weak key: it can only find a stereo variant, whose parent
    connectivity block is the same. A code of letters and digits keeps three
    characters (``(+)-JQ1`` → ``jq1``). Built on the ``acid_form`` key, except when
    ``desalted_loose`` dropped an ester-prone word: then on the ``parenthetical`` key
    (``estradiol valerate`` → ``estradiolvalerate``, never ``estradiol``).
``spelling_variant`` (tier 7)
    INN/BAN/USAN and British/American spelling variants meet: the stereo-stripped key
    is rewritten ``ph`` → ``f``, ``th`` → ``t``, ``ae``/``oe`` → ``e``, ``y`` → ``i``,
    ``ch``/``c``/``k`` → ``k``, a doubled letter → one, and a final ``e`` goes
    (``ciclosporin`` = ``cyclosporine``, ``colecalciferol`` = ``cholecalciferol``,
    ``difenidol`` = ``diphenidol``, ``isoetarine`` = ``isoetharine``,
    ``beclometasone`` = ``beclomethasone``, ``oestradiol`` = ``estradiol``). The
    loosest tier, with the lowest confidence: it is only reached when no other tier
    hits anything, so it never overrides an exact hit. Needs six characters.

Derived keys (tiers 2-6) shorter than three characters, or without a letter, are
dropped; a stereo-stripped key needs four characters, a spelling variant six.

Examples
--------
>>> [k.key for k in name_keys("Vinblastine (sulfate)")][:3]
['vinblastine (sulfate)', 'vinblastinesulfate', 'vinblastine']
>>> sorted({k.key for k in name_keys("Navitoclax (ABT-263)") if k.tier == 3})
['abt263', 'navitoclax']
>>> name_keys("Sodium valproate")[-2].key
'valproicacid'
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Final, NamedTuple

import numpy as np
import pandas as pd

__all__ = [
    "NAME_RULES_VERSION",
    "NAME_TIERS",
    "NameKey",
    "TierSpec",
    "name_key_table",
    "name_keys",
    "prepare_name",
    "spelling_variant",
]


#: Version of the rules below: a store's precomputed name keys (the derived table
#: ``compound_name_keys``) are used only when they were made by the same version.
#: Bump it with every change of a rule.
NAME_RULES_VERSION: Final = 3


@dataclass(frozen=True)
class TierSpec:
    """One tier of name matching: its rank, the match type it reports and its confidence."""

    tier: int
    match_type: str
    confidence: float
    description: str


#: The tiers of name matching, from the strictest to the loosest.
NAME_TIERS: Final[tuple[TierSpec, ...]] = (
    TierSpec(0, "synonym", 0.95, "case-insensitive exact synonym"),
    TierSpec(1, "normalized_name", 0.92, "letters and digits only"),
    TierSpec(2, "desalted", 0.88, "salt, hydrate and solvate words removed"),
    TierSpec(3, "parenthetical", 0.82, "main name and parenthesized alternatives"),
    TierSpec(4, "desalted_loose", 0.72, "ester-prone anion words also removed"),
    TierSpec(5, "acid_form", 0.7, "salt of an acid named as the acid"),
    TierSpec(6, "stereo_stripped", 0.6, "stereo descriptors removed"),
    TierSpec(7, "spelling_variant", 0.5, "INN/BAN/USAN spelling variants folded"),
)


class NameKey(NamedTuple):
    """A normalized key of a name at one tier (``alternative`` for parenthesized names)."""

    tier: int
    key: str
    alternative: bool = False

    @property
    def match_type(self) -> str:
        return NAME_TIERS[self.tier].match_type


_GREEK: Final[dict[str, str]] = {
    "α": "alpha", "β": "beta", "γ": "gamma", "δ": "delta", "ε": "epsilon", "ϵ": "epsilon",
    "ζ": "zeta", "η": "eta", "θ": "theta", "ϑ": "theta", "ι": "iota", "κ": "kappa",
    "λ": "lambda", "μ": "mu", "µ": "mu", "ν": "nu", "ξ": "xi", "ο": "omicron", "π": "pi",
    "ρ": "rho", "σ": "sigma", "ς": "sigma", "τ": "tau", "υ": "upsilon", "φ": "phi",
    "ϕ": "phi", "χ": "chi", "ψ": "psi", "ω": "omega",
}  # fmt: skip

_CHAR_MAP: Final[dict[int, str]] = {
    **{ord(g): w for g, w in _GREEK.items()},
    **dict.fromkeys(map(ord, "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d"), "-"),
    **dict.fromkeys(map(ord, "\u2032\u2019\u2018\u00b4`"), "'"),
    **dict.fromkeys(map(ord, "\u00b7\u2022\u2219\u22c5"), " "),
    **dict.fromkeys(map(ord, "\u201c\u201d"), '"'),
}

_SIGNS: Final[tuple[tuple[re.Pattern[str], str], ...]] = (
    (re.compile(r"\(\s*(?:\(rac\)|\+\s*/\s*-|-\s*/\s*\+|\+\s*,?\s*-)\s*\)"), "(rac)"),
    (re.compile(r"\(\s*\+\s*\)"), "(plus)"),
    (re.compile(r"\(\s*-\s*\)"), "(minus)"),
)
_SPACE = re.compile(r"\s+")
_TOKEN = re.compile(r"[a-z0-9]+")


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


#: Counter-ions and salt words that are never part of a covalent name: removed anywhere.
SALT_WORDS: Final[frozenset[str]] = _words(
    """
    hydrochloride hydrochlorides dihydrochloride trihydrochloride monohydrochloride
    hemihydrochloride hcl 2hcl 3hcl dihcl hbr 2hbr hydrobromide dihydrobromide
    monohydrobromide hydroiodide hydriodide hi
    mesylate dimesylate mesilate dimesilate methanesulfonate methanesulphonate
    dimethanesulfonate tosylate ditosylate tosilate toluenesulfonate besylate besilate
    benzenesulfonate esylate isethionate edisylate napsylate napadisylate
    maleate dimaleate hemimaleate fumarate hemifumarate difumarate citrate dicitrate
    tartrate bitartrate hemitartrate ditartrate malate oxalate hemioxalate dioxalate
    pamoate embonate gluconate lactobionate mandelate nitrate dinitrate perchlorate
    trifluoroacetate tfa chloride dichloride bromide dibromide iodide
    bisulfate hemisulfate disulfate hydrogensulfate bisulphate
    hydrate hydrates monohydrate dihydrate trihydrate tetrahydrate pentahydrate hexahydrate
    heptahydrate octahydrate nonahydrate sesquihydrate hemihydrate xhydrate nhydrate
    hydrated anhydrous anhydrate solvate hemisolvate ethanolate methanolate hemiethanolate
    salt salts freebase
    sodium disodium trisodium monosodium hemisodium potassium dipotassium monopotassium
    calcium hemicalcium magnesium lithium zinc ammonium diammonium meglumine tromethamine
    trometamol olamine erbumine
    """
)

#: Cation words: their presence allows the ``acid_form`` tier.
CATION_WORDS: Final[frozenset[str]] = _words(
    """
    sodium disodium trisodium monosodium hemisodium potassium dipotassium monopotassium
    calcium hemicalcium magnesium lithium zinc ammonium diammonium meglumine tromethamine
    trometamol olamine erbumine
    """
)

#: Anions that are often covalent esters (``abiraterone acetate``): removed outside
#: parentheses only at the ``desalted_loose`` tier.
ESTER_PRONE_WORDS: Final[frozenset[str]] = _words(
    """
    acetate diacetate triacetate succinate hemisuccinate disuccinate propionate
    dipropionate butyrate valerate benzoate phosphate diphosphate dihydrogenphosphate
    sulfate sulphate lactate palmitate stearate carbonate bicarbonate formate nicotinate
    furoate hexanoate enanthate decanoate undecanoate cypionate pivalate
    """
)

_LOOSE_WORDS: Final[frozenset[str]] = SALT_WORDS | ESTER_PRONE_WORDS

#: Words that may fill a salt/solvate group in parentheses but are not removed elsewhere.
_GROUP_FILLER: Final[frozenset[str]] = _words(
    """
    dmso tf ethanol methanol propanediol glycol propylene acetone acetonitrile isopropanol
    water dmf dioxane form forms mono di tri tetra hemi sesqui x n and with complex
    r s l d dl plus minus rac
    """
)

_ACID_COUNTERIONS: Final[frozenset[str]] = _words(
    """
    tartaric maleic fumaric citric succinic methanesulfonic hydrochloric sulfuric
    phosphoric oxalic malic benzenesulfonic toluenesulfonic hydrobromic
    """
)

_IRREGULAR_ACIDS: Final[dict[str, str]] = {
    "sulfate": "sulfuric",
    "sulphate": "sulfuric",
    "phosphate": "phosphoric",
    "carbonate": "carbonic",
    "nitrate": "nitric",
}

_STEREO_WORDS: Final[frozenset[str]] = _words(
    "r s rs sr l d dl ld plus minus rac racemic cis trans e z meso exo endo levo dextro"
)
_LOCANT_GREEK = re.compile(r"^(\d+[a-z]?)(?:alpha|beta)$")
_LEADING_GREEK: Final[frozenset[str]] = frozenset({"alpha", "beta"})
_GLUED_STEREO = re.compile(r"^(levo|dextro|dex|es)([a-z]{6,})$")
_STEREO_TOKEN = re.compile(r"^(?:\d+[a-z]?[rsez]|[rsez])$")
_NUMBER = re.compile(r"^\d+$")
_ALKYL = re.compile(r"^(?:mono|di|tri|tetra|bis)?(?:methyl|ethyl|propyl|isopropyl|butyl|hydrogen)$")


_VARIANT_RULES: Final[tuple[tuple[re.Pattern[str], str], ...]] = (
    (re.compile(r"ph"), "f"),
    (re.compile(r"th"), "t"),
    (re.compile(r"ae|oe"), "e"),
    (re.compile(r"y"), "i"),
    (re.compile(r"ch|c|k"), "k"),
    (re.compile(r"([a-z])\1"), r"\1"),
    (re.compile(r"e$"), ""),
)


def spelling_variant(key: str) -> str | None:
    """The ``spelling_variant`` key of a stereo-stripped key (``None`` when too short).

    Examples
    --------
    >>> spelling_variant("ciclosporin") == spelling_variant("cyclosporine")
    True
    >>> spelling_variant("colecalciferol")
    'kolekalkiferol'
    """
    for pattern, repl in _VARIANT_RULES:
        key = pattern.sub(repl, key)
    return key if len(key) >= 6 and _LETTER.search(key) else None


@lru_cache(maxsize=1_000_000)
def prepare_name(name: str) -> str:
    """The ``synonym``-tier form of a name: folded, Greek spelled out, dashes unified.

    Examples
    --------
    >>> prepare_name("18β-Glycyrrhetinic  Acid")
    '18beta-glycyrrhetinic acid'
    >>> prepare_name("(−)-Epicatechin")
    '(minus)-epicatechin'
    """
    if name.isascii():
        s = name.lower().replace("`", "'")
    else:
        s = unicodedata.normalize("NFKC", name).casefold().translate(_CHAR_MAP)
        s = "".join(c for c in unicodedata.normalize("NFKD", s) if not unicodedata.combining(c))
        if not s.isascii():
            s = s.replace("±", "(rac) ")
    if "(" in s:
        for pattern, repl in _SIGNS:
            s = pattern.sub(repl, s)
    return _SPACE.sub(" ", s).strip().strip("\"'").strip()


def _split_groups(s: str) -> list[tuple[str, bool]]:
    """Top-level text and parenthesized groups, in order (``(text, is_group)``)."""
    out: list[tuple[str, bool]] = []
    buf: list[str] = []
    depth = 0
    for ch in s:
        if ch == "(":
            if depth == 0:
                if buf:
                    out.append(("".join(buf), False))
                buf = []
            else:
                buf.append(ch)
            depth += 1
        elif ch == ")" and depth > 0:
            depth -= 1
            if depth == 0:
                out.append(("".join(buf), True))
                buf = []
            else:
                buf.append(ch)
        else:
            buf.append(ch)
    if buf:
        # an unclosed group is read as text
        out.append((("(" * depth) + "".join(buf) if depth else "".join(buf), False))
    return out


def _special(tok: str) -> bool:
    """A token some tier may remove or rewrite."""
    return (
        tok in SALT_WORDS
        or tok in ESTER_PRONE_WORDS
        or tok in _STEREO_WORDS
        or tok == "free"
        or tok == "acid"
        or tok.endswith("ate")
        or bool(_STEREO_TOKEN.match(tok))
        or bool(_GLUED_STEREO.match(tok))
        or bool(_LOCANT_GREEK.match(tok))
        or tok in _LEADING_GREEK
    )


def _is_stereo(tok: str) -> bool:
    return tok in _STEREO_WORDS or bool(_STEREO_TOKEN.match(tok))


def _saltish(tok: str) -> bool:
    return tok in SALT_WORDS or tok in ESTER_PRONE_WORDS


def _group_kind(content: str, tokens: list[str]) -> str:
    """``stereo``, ``salt``, ``note`` or ``other`` for a parenthesized group."""
    if not tokens:
        return "salt"
    if all(_is_stereo(t) for t in tokens):
        return "stereo"
    if "%" in content:
        return "note"
    fill = all(
        _saltish(t) or t in _GROUP_FILLER or _NUMBER.match(t) or _is_stereo(t) for t in tokens
    )
    if fill and any(_saltish(t) or t in _GROUP_FILLER - _STEREO_WORDS for t in tokens):
        return "salt"
    if "solvate" in tokens or "salt" in tokens:
        return "salt"
    return "other"


def _strip_words(tokens: list[str], drop: frozenset[str]) -> list[str]:
    """Remove ``drop`` words (and ``free base``) unless nothing with a letter would remain."""
    out: list[str] = []
    i = 0
    while i < len(tokens):
        t = tokens[i]
        if t == "free" and i + 1 < len(tokens) and tokens[i + 1] == "base":
            i += 2
            continue
        if t not in drop:
            out.append(t)
        i += 1
    if all(_NUMBER.match(t) or _ALKYL.match(t) for t in out):
        return tokens  # nothing left, or only "dimethyl" of dimethyl fumarate: an ester
    return out


def _strip_acid_counterion(tokens: list[str]) -> list[str]:
    """``X L-(+)-tartaric acid`` → ``X`` (when three non-digit characters remain)."""
    if len(tokens) >= 3 and tokens[-1] == "acid" and tokens[-2] in _ACID_COUNTERIONS:
        head = tokens[:-2]
        while head and _is_stereo(head[-1]):
            head = head[:-1]
        if sum(len(t) for t in head if not _NUMBER.match(t)) >= 3:
            return head
    return tokens


def _acid_form(tokens: list[str], had_cation: bool) -> list[str]:
    if not had_cation or not tokens:
        return tokens
    last = tokens[-1]
    if last in _IRREGULAR_ACIDS:
        return [*tokens[:-1], _IRREGULAR_ACIDS[last], "acid"]
    if len(last) > 5 and last.endswith("ate"):
        return [*tokens[:-1], last[:-3] + "ic", "acid"]
    return tokens


_LETTER = re.compile(r"[a-z]")
_DIGIT = re.compile(r"[0-9]")


def _stereo_min_len(tokens: list[str]) -> int:
    """Four characters for a stereo-stripped key; three for a code (``JQ1``)."""
    key = "".join(tokens)
    return 3 if _DIGIT.search(key) and _LETTER.search(key) else 4


_PLAIN = re.compile(r"^[a-z0-9 \-]+$")


def _derived(tokens: list[str], min_len: int = 3) -> str | None:
    key = "".join(tokens)
    if len(key) < min_len or _LETTER.search(key) is None:
        return None
    return key


@lru_cache(maxsize=1_000_000)
def _name_keys(name: str) -> tuple[NameKey, ...]:
    s = prepare_name(name)
    if not s:
        return ()
    keys: list[NameKey] = [NameKey(0, s)]
    compact = "".join(_TOKEN.findall(s))
    if not compact:
        return tuple(keys)
    keys.append(NameKey(1, compact))
    if _PLAIN.match(s):
        toks = _TOKEN.findall(s)
        if not any(_special(t) for t in toks):
            # nothing to strip: every looser tier has the same key
            k = _derived(toks)
            if k:
                keys.extend(NameKey(t, k) for t in range(2, 6))
                if len(k) >= _stereo_min_len([k]):
                    keys.append(NameKey(6, k))
                    v = spelling_variant(k)
                    if v:
                        keys.append(NameKey(7, v))
            return tuple(keys)

    # segments: text tokens, groups with their kind
    segments: list[tuple[str, list[str], str]] = []  # (kind, tokens, raw)
    had_cation = False
    for text, is_group in _split_groups(s):
        toks = _TOKEN.findall(text)
        if any(t in CATION_WORDS for t in toks):
            had_cation = True
        segments.append((_group_kind(text, toks) if is_group else "text", toks, text))

    # tier 2: salt groups dropped, salt words dropped from text
    text_only = [t for kind, toks, _ in segments if kind != "salt" for t in toks]
    t2 = _strip_words(text_only, SALT_WORDS)
    k2 = _derived(t2)
    if k2:
        keys.append(NameKey(2, k2))

    # tier 3+: main name (only text and stereo groups) and parenthesized alternatives
    main = _strip_words(
        [t for kind, toks, _ in segments if kind in ("text", "stereo") for t in toks], SALT_WORDS
    )
    alternatives: list[list[str]] = []
    for kind, _, raw in segments:
        if kind != "other":
            continue
        for part in re.split(r"[,;]| or ", raw):
            toks = _strip_words(_TOKEN.findall(part), SALT_WORDS | ESTER_PRONE_WORDS)
            if toks:
                alternatives.append(toks)
    variants = [(main, False)] + [(a, True) for a in alternatives]

    seen = set(keys)

    def emit(tier: int, tokens: list[str], alt: bool, min_len: int = 3) -> None:
        key = _derived(tokens, min_len)
        if key:
            nk = NameKey(tier, key, alt)
            if nk not in seen:
                seen.add(nk)
                keys.append(nk)

    for toks, alt in variants:
        emit(3, toks, alt)
        # with a cation in the name the anion is part of the molecule (estrone sulfate
        # potassium, prednisolone sodium phosphate): it stays
        loose = _strip_acid_counterion(toks if had_cation else _strip_words(toks, _LOOSE_WORDS))
        emit(4, loose, alt)
        acid = _acid_form(loose, had_cation)
        emit(5, acid, alt)
        # stereo stripping never combines with dropping an ester word: estradiol
        # valerate stays estradiolvalerate here, so beta-estradiol finds estradiol only
        ester_dropped = not had_cation and _strip_words(toks, _LOOSE_WORDS) != toks
        bare = [_LOCANT_GREEK.sub(r"\1", t) for t in (toks if ester_dropped else acid)]
        bare = [t for t in bare if not _is_stereo(t)]
        if len(bare) > 1 and bare[0] in _LEADING_GREEK and len(bare[1]) >= 6:
            bare = bare[1:]  # beta-estradiol: the position of a group left unsaid
        emit(6, bare, alt, min_len=_stereo_min_len(bare))
        variant = spelling_variant("".join(bare))
        if variant:
            emit(7, [variant], alt, min_len=6)
        if bare and not alt:
            m = _GLUED_STEREO.match(bare[0])
            if m:
                emit(6, [m.group(2), *bare[1:]], True, min_len=6)
    return tuple(keys)


def name_key_table(names: Sequence[str]) -> pd.DataFrame:
    """The keys of many names at once, as a long table (fast for large lists).

    Equivalent to calling :func:`name_keys` on each name; names without parentheses,
    punctuation or removable words (most of them) take a vectorized path.

    Parameters
    ----------
    names
        Compound names (strings).

    Returns
    -------
    Columns ``i`` (position in ``names``), ``tier``, ``key``, ``alternative``.
    """
    prepared = [prepare_name(n) for n in names]
    fast_i: list[int] = []
    fast_prep: list[str] = []
    fast_key: list[str] = []
    rows: list[tuple[int, int, str, bool]] = []
    for i, (name, p) in enumerate(zip(names, prepared, strict=True)):
        if not p:
            continue
        if _PLAIN.match(p):
            toks = _TOKEN.findall(p)
            if toks and not any(_special(t) for t in toks):
                fast_i.append(i)
                fast_prep.append(p)
                fast_key.append("".join(toks))
                continue
        rows.extend((i, k.tier, k.key, k.alternative) for k in _name_keys(name))
    slow = pd.DataFrame(rows, columns=["i", "tier", "key", "alternative"])
    idx = np.asarray(fast_i, dtype=np.int64)
    key = np.asarray(fast_key, dtype=object)
    klen = np.fromiter((len(k) for k in fast_key), dtype=np.int64, count=len(fast_key))
    has_letter = np.fromiter(
        (_LETTER.search(k) is not None for k in fast_key), dtype=bool, count=len(fast_key)
    )
    parts = [
        pd.DataFrame({"i": idx, "tier": 0, "key": np.asarray(fast_prep, dtype=object)}),
        pd.DataFrame({"i": idx, "tier": 1, "key": key}),
    ]
    ok = has_letter & (klen >= 3)
    parts += [pd.DataFrame({"i": idx[ok], "tier": t, "key": key[ok]}) for t in range(2, 6)]
    has_digit = np.fromiter(
        (_DIGIT.search(k) is not None for k in fast_key), dtype=bool, count=len(fast_key)
    )
    ok6 = has_letter & ((klen >= 4) | ((klen == 3) & has_digit))
    parts.append(pd.DataFrame({"i": idx[ok6], "tier": 6, "key": key[ok6]}))
    variants = np.array([spelling_variant(k) for k in key[ok6]], dtype=object)
    has_v = np.array([v is not None for v in variants], dtype=bool)
    parts.append(pd.DataFrame({"i": idx[ok6][has_v], "tier": 7, "key": variants[has_v]}))
    fast = pd.concat(parts, ignore_index=True)
    fast["alternative"] = False
    out = pd.concat([slow, fast], ignore_index=True) if len(slow) else fast
    return out.astype({"i": np.int64, "tier": np.int64, "alternative": bool})


def name_keys(name: str) -> tuple[NameKey, ...]:
    """The keys of ``name`` at every tier (see the module docstring for the rules).

    Parameters
    ----------
    name
        A compound name, synonym or vendor spelling.

    Returns
    -------
    The keys in tier order. Tiers 0 and 1 have one key; tier 2 at most one; tiers 3-6 a
    main key and one per parenthesized alternative (``alternative=True``). A tier can be
    missing when its derived key would be too short.

    Examples
    --------
    >>> [(k.match_type, k.key) for k in name_keys("Imatinib Mesylate")][1:3]
    [('normalized_name', 'imatinibmesylate'), ('desalted', 'imatinib')]
    """
    if not isinstance(name, str):
        raise TypeError(f"expected a compound name as str, found {type(name).__name__}")
    return _name_keys(name)
