"""Prompt screening against registered works, with the real all-MiniLM-L6-v2 weights and
rapidfuzz. The benchmark registers six works with titles, aliases and descriptions, then shows
that prompts naming them (exactly, misspelt, re-spaced) or paraphrasing them are caught, each
with the right work, and that ordinary prompts, near misses included, pass."""

from __future__ import annotations

import pytest

import index
from bench.perf import synthetic_work
from generator import screening

WORKS = [
    ("Harry Potter", ["The Boy Who Lived"],
     "A young wizard with a lightning-bolt scar on his forehead and round glasses who attends "
     "Hogwarts School of Witchcraft and Wizardry"),
    ("Mickey Mouse", ["Steamboat Willie"],
     "A cheerful cartoon mouse with big round black ears, red shorts, yellow shoes and white gloves"),
    ("Pikachu", [],
     "A small yellow electric mouse Pokemon with red cheeks, long pointed ears with black tips "
     "and a lightning-bolt shaped tail"),
    ("Darth Vader", ["Anakin Skywalker"],
     "A towering Sith lord in a black helmet, black armour and a flowing cape who wields a red "
     "lightsaber and breathes heavily"),
    ("My Neighbor Totoro", ["Totoro"],
     "A huge grey furry forest spirit with a round belly, pointed ears and a wide grin who waits "
     "at a bus stop in the rain and rides a cat bus"),
    ("Spider-Man", ["Peter Parker"],
     "A masked superhero in a red and blue suit with a web pattern who swings between New York "
     "skyscrapers on webs"),
]

# (prompt, the work it must be caught for, how it names it)
CAUGHT = [
    ("Harry Potter flying a broomstick over a lake", "Harry Potter", "named"),
    ("harry poter casting a spell in the great hall", "Harry Potter", "misspelt"),
    ("a boy wizard with a lightning scar and round glasses flying a broomstick over a castle",
     "Harry Potter", "paraphrase"),
    ("Mickey Mouse whistling on a steamboat", "Mickey Mouse", "named"),
    ("Mikey Mouse dancing in the rain", "Mickey Mouse", "misspelt"),
    ("a cartoon mouse with round black ears, red shorts and white gloves waving", "Mickey Mouse",
     "paraphrase"),
    ("pikachu running through tall grass", "Pikachu", "named"),
    ("Pikachuu using thunderbolt on a mountain", "Pikachu", "misspelt"),
    ("the yellow electric pokemon mouse with red cheeks running through tall grass", "Pikachu",
     "paraphrase"),
    ("DARTH VADER walking down a corridor", "Darth Vader", "named"),
    ("darth vadar breathing heavily on the bridge of a starship", "Darth Vader", "misspelt"),
    ("a dark lord in black armour and helmet with a red laser sword on a spaceship",
     "Darth Vader", "paraphrase"),
    ("Totoro waiting at a bus stop", "My Neighbor Totoro", "named"),
    ("my neighbour totoro in a camphor tree", "My Neighbor Totoro", "misspelt"),
    ("a big grey furry forest creature waiting at a bus stop in the rain", "My Neighbor Totoro",
     "paraphrase"),
    ("spiderman swinging through the city", "Spider-Man", "re-spaced"),
    ("Spidr-Man on a rooftop at night", "Spider-Man", "misspelt"),
    ("a superhero in a red and blue costume swinging on webs between skyscrapers", "Spider-Man",
     "paraphrase"),
]

ORDINARY = [
    "a calm ocean at sunset with drifting lights",
    "a wizard casting a spell in a misty forest",
    "a mouse eating cheese in a kitchen",
    "a knight in shining armour riding a horse",
    "a busy city street at night with neon signs",
    "a cat sleeping on a sunny windowsill",
    "a man in a black coat walking through snow",
    "a yellow bird singing on a branch",
    "a spaceship flying past a ringed planet",
    "a child flying a kite on a windy beach",
    "an astronaut floating above the earth",
    "a red sports car driving along a coastal road",
    "a spider spinning a web covered in dew",
    "a thunderstorm rolling over wheat fields",
    "a potter shaping clay on a wheel",
    "a steam train crossing a stone bridge",
    "a grey wolf howling at the moon",
    "children waiting for a school bus in the rain",
    "a lighthouse on a rocky coast in a storm",
    "a hot air balloon over a valley at dawn",
]


def _register(settings, tmp_path, only: tuple[str, ...] = ()) -> dict[str, str]:
    """Register WORKS (or those titled in `only`) through the real registry; title -> work id."""
    titles = {}
    for i, (title, aliases, description) in enumerate(WORKS):
        if only and title not in only:
            continue
        path = tmp_path / f"w{i}.png"
        synthetic_work(500 + i).save(path)
        work = index.register_work(path, owner="Studio", title=title, policy="block",
                                   aliases=aliases, description=description, settings=settings)
        titles[title] = str(work["id"])
    return titles


@pytest.fixture
def registered(settings, tmp_path):
    return _register(settings, tmp_path)


def test_benchmark_catches_named_misspelt_and_paraphrased_prompts_and_passes_ordinary(
        settings, registered):
    works = screening.active_works(settings)
    assert len(works) == len(WORKS)
    missed, wrong = [], []
    rows = []
    for prompt, title, how in CAUGHT:
        s = screening.screen_prompt(prompt, settings=settings, works=works, record=False)
        found = {m["title"] for m in s.matches}
        rows.append((s.decision, how, prompt, ", ".join(sorted(found))))
        if s.decision != "refuse":
            missed.append((how, prompt))
        elif title not in found:
            wrong.append((prompt, found))
    false_alarms = []
    for prompt in ORDINARY:
        s = screening.screen_prompt(prompt, settings=settings, works=works, record=False)
        rows.append((s.decision, "ordinary", prompt, s.reason))
        if s.decision != "pass":
            false_alarms.append((prompt, s.reason))
    print("\nprompt screening benchmark (decision, kind, prompt, matched)")
    for r in rows:
        print("  %-6s %-10s %s  -> %s" % r)
    print(f"caught {len(CAUGHT) - len(missed)}/{len(CAUGHT)}, "
          f"false alarms {len(false_alarms)}/{len(ORDINARY)}")
    assert not missed and not wrong and not false_alarms, (missed, wrong, false_alarms)


def test_refusal_names_the_work_and_why_and_is_recorded(settings, tmp_path):
    registered = _register(settings, tmp_path, ("Mickey Mouse", "Pikachu"))
    s = screening.screen_prompt("Mikey Mouse dancing in the rain", settings=settings)
    assert s.decision == "refuse" and s.id
    (m,) = s.matches
    assert m["work_id"] == registered["Mickey Mouse"] and m["action"] == "refuse"
    assert "'mikey mouse' ~ 'Mickey Mouse'" in s.reason and "name match" in s.reason
    assert s.signals["clip_text"] == {"counted": False, "note": screening.CLIP_RANDOM_NOTE}
    from clipgate import db

    with db.connection(settings) as conn:
        row = conn.execute("SELECT * FROM prompt_screenings WHERE id = %s", (s.id,)).fetchone()
    assert row["decision"] == "refuse" and row["matches"][0]["title"] == "Mickey Mouse"


def test_review_works_and_warn_policy_allow_with_a_warning(settings, tmp_path):
    registered = _register(settings, tmp_path, ("Pikachu", "Darth Vader"))
    index.set_work_policy(registered["Pikachu"], "review", settings=settings)
    s = screening.screen_prompt("pikachu in the snow", settings=settings, record=False)
    assert s.decision == "warn" and "allowed with a warning" in s.warnings[0]
    warn_all = settings.model_copy(update={"screening_action": "warn"})
    s = screening.screen_prompt("Darth Vader in the snow", settings=warn_all, record=False)
    assert s.decision == "warn" and s.matches[0]["title"] == "Darth Vader"


def test_removed_works_no_longer_screen(settings, tmp_path):
    registered = _register(settings, tmp_path, ("Spider-Man",))
    index.remove_work(registered["Spider-Man"], settings=settings)
    s = screening.screen_prompt("spiderman on a roof", settings=settings, record=False)
    assert s.decision == "pass"


@pytest.mark.parametrize("name, prompt, at_least", [
    ("Mickey Mouse", "mickey mouse", 100), ("Spider-Man", "spiderman swinging", 94),
    ("Ñandú Azul", "a nandu azul at dusk", 100), ("Cars", "two cars racing", 100),
])
def test_name_matching_normalises(name, prompt, at_least):
    assert screening.name_score(name, screening.normalise(prompt))[0] >= at_least


def test_short_names_match_only_whole_words():
    assert screening.name_score("Up", screening.normalise("look up at the sky"))[0] == 0
    assert screening.name_score("Cars", screening.normalise("a car park"))[0] == 0


def test_clip_text_counts_only_with_a_checkpoint(settings, tmp_path):
    import open_clip
    import torch

    torch.manual_seed(0)
    net, _, _ = open_clip.create_model_and_transforms("ViT-S-32", pretrained=None)
    ckpt = tmp_path / "clip.pt"
    torch.save(net.state_dict(), ckpt)
    works = [screening.WorkText("w1", "Harry Potter", "Studio", "block", (), WORKS[0][2])]
    with_ckpt = settings.model_copy(update={"clip_model": "ViT-S-32", "clip_checkpoint": ckpt,
                                            "screening_clip_min_similarity": -1.0})
    s = screening.screen_prompt("a lighthouse in fog", settings=with_ckpt, works=works,
                                record=False)
    assert s.signals["clip_text"]["counted"] is True
    # Any cosine clears a threshold of -1: the CLIP text signal alone refuses, and says so.
    assert s.decision == "refuse" and [e["signal"] for e in s.matches[0]["evidence"]] == ["clip_text"]
