"""The rule parser's English lexicon: closed word classes, a verb list with inflections, and the tokenizer."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass


def _words(s: str) -> frozenset[str]:
    return frozenset(s.split())


DET = _words("a an the this these those some each every another his her its their my your our no any")
NUM = _words("one two three four five six seven eight nine ten eleven twelve several many few both couple dozen")
PRON_SUBJ = _words("it they he she we")  # resolve to the previous clause's subject
PRON_OBJ = _words("it them him her itself themselves himself herself us")
PRON = PRON_SUBJ | PRON_OBJ | _words("i you me")
REL = _words("who which whom whose")  # "that" is decided in context
SEQ = _words(
    "first then finally next afterwards afterward later meanwhile lastly eventually subsequently "
    "initially suddenly also"
)
SUBORD = _words("while when whereas as once until before after")  # clause-initial: a clause boundary
SEQ_MULTI: tuple[tuple[str, ...], ...] = (
    ("after", "that"),
    ("after", "this"),
    ("and", "then"),
    ("and", "finally"),
    ("and", "later"),
    ("at", "first"),
    ("at", "the", "end"),
    ("in", "the", "end"),
    ("at", "the", "same", "time"),
    ("after", "which"),
    ("but", "then"),
    ("and", "next"),
    ("and", "afterwards"),
    ("and", "meanwhile"),
    ("and", "also"),
    ("right", "after", "that"),
    ("soon", "after"),
    ("shortly", "after"),
    ("and", "after", "that"),
)
CONJ = _words("and or but nor plus")
AUX = _words(
    "is are was were be been being am has have had does do did will would can could may might "
    "should must shall gets get got"
)
COPULA = _words("is are was were be been being am")
PREP = _words(
    "past toward towards into onto on in at to from with without under over above below behind beside besides "
    "near by of off across through throughout around along among amongst between against beneath underneath "
    "inside outside within upon via beyond despite during like unlike than up down out opposite alongside "
    "atop"
)
PREP_MULTI: tuple[tuple[str, ...], ...] = (
    ("next", "to"),
    ("in", "front", "of"),
    ("on", "top", "of"),
    ("away", "from"),
    ("out", "of"),
    ("close", "to"),
    ("because", "of"),
    ("instead", "of"),
    ("in", "the", "middle", "of"),
    ("on", "the", "left", "of"),
    ("on", "the", "right", "of"),
    ("to", "the", "left", "of"),
    ("to", "the", "right", "of"),
    ("left", "of"),
    ("right", "of"),
    ("in", "between"),
    ("together", "with"),
    ("apart", "from"),
    ("ahead", "of"),
    ("on", "the", "side", "of"),
    ("at", "the", "edge", "of"),
    ("in", "the", "back", "of"),
    ("far", "from"),
    ("along", "with"),
    ("up", "to"),
    ("next", "door", "to"),
    ("all", "over"),
)
# Direction words and adverbs that stay with the verb: "moves left", "turns around quickly".
PARTICLE = _words(
    "left right up down away back forward forwards backward backwards around off out over together apart "
    "along aside upward upwards downward downwards sideways inside outside in on home again too still "
    "quickly slowly fast rapidly gently suddenly steadily smoothly briefly repeatedly clockwise "
    "counterclockwise anticlockwise diagonally horizontally vertically straight there here"
)
# "-ly" words that are not adverbs (any other "-ly" word after a verb stays with it).
LY_NOT_ADVERB = _words(
    "family fly belly jelly lily bully ally rally holly reply supply assembly july italy "
    "butterfly dragonfly jolly silly ugly only friendly lonely lovely curly"
)
COLOURS = _words(
    "red green blue yellow purple cyan orange white black grey gray brown pink magenta violet "
    "golden silver dark light beige navy teal turquoise"
)
SIZES = _words("small large big tiny huge little tall short long wide narrow giant medium")
ADJ = (
    COLOURS
    | SIZES
    | _words(
        "young old new old-fashioned happy sad angry wooden metal plastic glass empty full open closed "
        "hot cold wet dry round square striped colorful colourful bright shiny smiling sitting standing "
        "running walking heavy fat thin pretty beautiful ugly elderly other same different first last second "
        "third whole half busy crowded quiet loud little clean dirty soft hard fresh rotten ripe blond blonde "
        "bald curly straight asian african european male female adult baby wild calm front back side rear"
    )
)
# Verb bases: common in video captions; inflections are derived (see verb_base).
VERBS = _words(
    "move appear disappear vanish emerge hit pass approach collide touch bounce roll slide spin rotate "
    "turn shrink grow expand fall drop rise jump hop run walk ride drive fly swim float sink climb crawl "
    "skate ski surf dive sit stand lie lay lean kneel squat hold carry grab take put place pick lift push "
    "pull throw toss catch kick hold shake wave point look watch see stare glance talk speak say tell ask "
    "answer sing dance play perform cook cut chop slice stir pour mix bake fry eat drink bite chew taste "
    "smell open close enter exit leave cross follow chase lead meet join hug kiss fight punch hand give "
    "show use make build paint draw write read type wear dress wash clean wipe brush comb shave hang "
    "attach fix repair load unload fill empty stop start begin finish continue go come return arrive "
    "reach head go hurry rush race travel wander stroll march jog sprint pace circle orbit bump "
    "crash strike smash break tear fold wrap tie open stack arrange sort count measure weigh check "
    "hide reveal cover uncover enter gather scatter spread flow drip splash spray blow burn melt freeze "
    "shine glow flash flicker blink nod smile laugh cry shout yell scream whisper sleep wake rest relax "
    "wait stay remain keep let help teach learn study work practice train exercise stretch bend twist "
    "swing toss shoot aim fire score win lose serve bat pitch dribble tackle block steer park board "
    "mount dismount descend ascend pedal paddle row sail fish hunt feed pet groom bark meow chirp "
    "graze eat lick sniff dig pour cross overtake merge swerve accelerate slow brake honk collide "
    "surround enclose contain connect separate divide combine collect pass hand send receive deliver "
    "buy sell pay order serve demonstrate explain present introduce describe interview film record "
    "photograph sit rest approach depart land crash tumble stumble trip slip skid drag shove pat rub "
    "scratch tap knock ring press squeeze pinch grip release drop pick bounce juggle balance wobble "
    "shake vibrate swing sway rock spin whirl twirl flip"
)
IRREGULAR = {
    "ran": "run",
    "sat": "sit",
    "stood": "stand",
    "held": "hold",
    "threw": "throw",
    "thrown": "throw",
    "caught": "catch",
    "took": "take",
    "taken": "take",
    "went": "go",
    "gone": "go",
    "came": "come",
    "fell": "fall",
    "fallen": "fall",
    "flew": "fly",
    "flown": "fly",
    "rode": "ride",
    "ridden": "ride",
    "ate": "eat",
    "eaten": "eat",
    "drank": "drink",
    "drunk": "drink",
    "gave": "give",
    "given": "give",
    "got": "get",
    "saw": "see",
    "seen": "see",
    "wore": "wear",
    "worn": "wear",
    "drove": "drive",
    "driven": "drive",
    "swam": "swim",
    "rose": "rise",
    "risen": "rise",
    "spoke": "speak",
    "spoken": "speak",
    "sang": "sing",
    "sung": "sing",
    "told": "tell",
    "said": "say",
    "made": "make",
    "built": "build",
    "drew": "draw",
    "drawn": "draw",
    "wrote": "write",
    "written": "write",
    "led": "lead",
    "met": "meet",
    "fought": "fight",
    "shook": "shake",
    "shaken": "shake",
    "struck": "strike",
    "broke": "break",
    "broken": "break",
    "tore": "tear",
    "torn": "tear",
    "hid": "hide",
    "hidden": "hide",
    "began": "begin",
    "begun": "begin",
    "lay": "lie",
    "lain": "lie",
    "laid": "lay",
    "knelt": "kneel",
    "dug": "dig",
    "slid": "slide",
    "spun": "spin",
    "sank": "sink",
    "sunk": "sink",
    "swung": "swing",
    "blew": "blow",
    "blown": "blow",
    "froze": "freeze",
    "frozen": "freeze",
    "slept": "sleep",
    "woke": "wake",
    "kept": "keep",
    "taught": "teach",
    "won": "win",
    "lost": "lose",
    "shot": "shoot",
    "bought": "buy",
    "sold": "sell",
    "paid": "pay",
    "sent": "send",
    "fed": "feed",
    "hung": "hang",
    "grew": "grow",
    "grown": "grow",
    "does": "do",
    "did": "do",
    "done": "do",
    "has": "have",
    "had": "have",
}
# Words that look like inflected verbs but are nouns in captions ("the waves", "a bus").
NOT_VERB = _words(
    "bus glass grass dress gas class boss moss process address kiss news series species "
    "lens pants jeans shorts clothes glasses goggles scissors stairs waves rocks plants "
    "flowers trees cars balls boxes dishes watches this his its is was has does"
)


@functools.lru_cache(maxsize=4096)
def verb_base(w: str) -> str | None:
    """The verb base of ``w`` when it is an inflection of a known verb ("moves" -> "move"), else None."""
    if w in IRREGULAR:
        return IRREGULAR[w]
    if w in VERBS:
        return w
    cands: list[str] = []
    if w.endswith("ies"):
        cands.append(w[:-3] + "y")
    if w.endswith("es"):
        cands.append(w[:-2])
    if w.endswith("s") and not w.endswith("ss"):
        cands.append(w[:-1])
    if w.endswith("ied"):
        cands.append(w[:-3] + "y")
    if w.endswith("ed"):
        cands += [w[:-2], w[:-1]]
        if len(w) > 4 and w[-3] == w[-4]:
            cands.append(w[:-3])  # stopped -> stop
    if w.endswith("ing") and len(w) > 4:
        cands += [w[:-3], w[:-3] + "e"]
        if w[-4] == w[-5]:
            cands.append(w[:-4])  # running -> run
        if w.endswith("ying"):
            cands.append(w[:-4] + "ie")  # lying -> lie
    return next((c for c in cands if c in VERBS), None)


def verb_form(w: str) -> str | None:
    """ "3sg" | "ing" | "ed" | "base" for a word that can be a verb, else None."""
    if w in NOT_VERB:
        return None
    base = verb_base(w)
    if base is None:
        return None
    if w == base:
        return "base"
    if w.endswith("ing"):
        return "ing"
    if w.endswith("s"):
        return "3sg"
    return "ed"


TOKEN_RE = re.compile(r"[^\W_]+(?:[-'\u2019][^\W_]+)*|[^\w\s]", re.UNICODE)


@dataclass(frozen=True)
class Tok:
    low: str
    start: int
    end: int


def tokenize(text: str) -> list[Tok]:
    out = []
    for m in TOKEN_RE.finditer(text):
        w, a = m.group(), m.start()
        low = w.lower().replace("\u2019", "'")
        if len(w) > 2 and low.endswith("'s"):  # possessive / "it's": its own token
            out.append(Tok(low[:-2], a, a + len(w) - 2))
            out.append(Tok("'s", a + len(w) - 2, a + len(w)))
        else:
            out.append(Tok(low, a, a + len(w)))
    return out
