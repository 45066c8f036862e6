"""Text-to-video generation behind one small interface.

The default backend, "procedural", runs on any CPU and stands in for a real text-to-video model:
ordinary prompts give original abstract clips, and prompts naming a sample work make it regurgitate
that work (the ground truth the compliance gate is tested against). GPU backends register under
other names and return the same GeneratedClip.
"""

import compliance
from generator.base import (
    GeneratedClip,
    GenerationRequest,
    Generator,
    available_backends,
    get_generator,
    prompt_sha256,
    register_backend,
    unregister_backend,
)
from generator.jobs import follow_review
from generator.samples import SampleWork, get_work, render_sample_video, sample_works

# A held clip's decision moves its generation job on, in the decision's own transaction.
compliance.on_review_decided(follow_review)

__all__ = [
    "GeneratedClip",
    "GenerationRequest",
    "Generator",
    "SampleWork",
    "available_backends",
    "get_generator",
    "get_work",
    "prompt_sha256",
    "register_backend",
    "render_sample_video",
    "sample_works",
    "unregister_backend",
]
