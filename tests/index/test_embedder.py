"""CLIP embeddings: random weights are said, a local checkpoint loads and counts, spaces never mix,
and without a checkpoint CLIP is not computed at all (CLIPGATE_CLIP=auto)."""

from __future__ import annotations

import numpy as np
import open_clip
import pytest
import torch

import index
from clipgate.errors import BadInput, Unavailable
from index.embedder import ClipEmbedder
from tests.media import photo, write_image

SMALL = "ViT-S-32"  # 384-d: small enough to save and load in a test


def test_random_weights_are_deterministic_and_flagged():
    a = ClipEmbedder(SMALL, None)
    b = ClipEmbedder(SMALL, None)
    frames = [photo("astronaut"), photo("coffee")]
    assert a.info.random and a.info.weights == "random"
    assert a.info.id == f"{SMALL}:random-seed0"
    np.testing.assert_allclose(a.embed(frames), b.embed(frames), atol=1e-5)
    v = a.embed(frames)
    assert v.shape == (2, 384) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)


def test_checkpoint_from_a_local_path_is_loaded(tmp_path):
    torch.manual_seed(1234)
    trained = open_clip.create_model(SMALL, pretrained=None).eval()
    ckpt = tmp_path / "weights.pt"
    torch.save(trained.state_dict(), ckpt)

    loaded = ClipEmbedder(SMALL, ckpt)
    assert loaded.info.weights == "checkpoint" and not loaded.info.random
    assert loaded.info.checkpoint_sha256 and loaded.info.id.startswith(f"{SMALL}:")

    frame = photo("chelsea")
    with torch.inference_mode():
        x = loaded.preprocess([frame])
        expected = torch.nn.functional.normalize(trained.encode_image(x), dim=-1).numpy()
    np.testing.assert_allclose(loaded.embed([frame]), expected, atol=1e-4)
    random = ClipEmbedder(SMALL, None).embed([frame])
    assert not np.allclose(random, expected, atol=1e-3)


def _checkpoint(path, seed):
    torch.manual_seed(seed)
    torch.save(open_clip.create_model(SMALL, pretrained=None).state_dict(), path)
    return path


def test_checkpoint_weights_make_clip_count(settings, tmp_path):
    ckpt = _checkpoint(tmp_path / "w.pt", 99)
    s = settings.model_copy(update={"clip_model": SMALL, "clip_checkpoint": ckpt})
    from compliance import check_clip

    img = write_image(tmp_path / "a.png", photo("astronaut"))
    index.register_work(img, owner="o", title="t", policy="block", settings=s)
    result = check_clip(img, settings=s)
    assert result.clip == {"mode": "auto", "computed": True, "counted": True, "model": SMALL,
                           "weights": "checkpoint"}
    assert result.signals["clip"]["counts"] is True and result.warnings == []
    assert "clip" in result.matches[0].signals  # the same picture: CLIP fires and counts


def test_without_a_checkpoint_clip_costs_nothing_and_says_so(settings, tmp_path):
    from compliance import check_clip

    img = write_image(tmp_path / "a.png", photo("astronaut"))
    index.register_work(img, owner="o", title="t", policy="block", settings=settings)
    result = check_clip(img, settings=settings)
    assert result.clip["mode"] == "auto" and result.clip["computed"] is False
    assert "not computed" in result.clip["note"]
    assert "clip" not in result.signals and "clip" not in index.health(settings)["signals"]
    # Forced on (for tests): random weights, computed, said in the result, never counted.
    on = settings.model_copy(update={"clip": "on", "clip_model": SMALL})
    forced = check_clip(img, settings=on)
    assert forced.clip["computed"] and not forced.clip["counted"]
    assert forced.warnings and "RANDOM" in forced.warnings[0]
    assert forced.verdict == "block"  # the other signals still decide
    assert all("clip" not in m.signals for m in forced.matches)


def test_bad_model_or_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(BadInput, match="unknown CLIP model"):
        ClipEmbedder("ViT-Nope", None)
    with pytest.raises(Unavailable, match="checkpoint not found"):
        ClipEmbedder(SMALL, tmp_path / "nothing.pt")


def test_index_refuses_to_mix_embedding_spaces(settings, tmp_path):
    a = settings.model_copy(update={"clip_model": SMALL,
                                    "clip_checkpoint": _checkpoint(tmp_path / "a.pt", 1)})
    b = settings.model_copy(update={"clip_model": SMALL,
                                    "clip_checkpoint": _checkpoint(tmp_path / "b.pt", 2)})
    img = write_image(tmp_path / "a.png", photo("astronaut"))
    index.register_work(img, owner="o", title="t", policy="block", settings=a)
    img2 = write_image(tmp_path / "b.png", photo("coffee"))
    with pytest.raises(Unavailable, match="clip vectors of .*index rebuild --reembed"):
        index.register_work(img2, owner="o", title="t2", policy="block", settings=b)
    assert len(index.list_works(settings=settings)) == 1


def test_reembed_moves_the_index_to_the_new_model(settings, tmp_path):
    a = settings.model_copy(update={"clip_model": SMALL,
                                    "clip_checkpoint": _checkpoint(tmp_path / "a.pt", 1)})
    b = settings.model_copy(update={"clip_model": SMALL,
                                    "clip_checkpoint": _checkpoint(tmp_path / "b.pt", 2)})
    img = write_image(tmp_path / "a.png", photo("astronaut"))
    index.register_work(img, owner="o", title="t", policy="block", settings=a)
    built = index.reembed_all(b)
    assert built["works"] == 1 and built["frames"] == 1
    version = index.health(b)["signals"]["clip"]["version"]
    assert version == index.active(b)["clip"].version != index.active(a)["clip"].version
    from compliance import check_clip

    assert check_clip(img, settings=b).verdict == "block"


def test_empty_settings_from_compose_mean_unset(monkeypatch):
    from clipgate.settings import Settings

    monkeypatch.setenv("CLIPGATE_CLIP_CHECKPOINT", "")
    monkeypatch.setenv("CLIPGATE_DATABASE_URL", "")
    s = Settings(_env_file=None)
    assert s.clip_checkpoint is None and s.database_url is None and s.embedded
