"""The names of what ``embed`` reads out of the model, defined once (no torch: the CLI's help
and choices come from here). What each readout computes is ``embed.readout``.
"""

from __future__ import annotations

# readout -> what it is (the CLI's help and the docs)
READOUTS = {
    "input+context+visible+ahead+change+scene-fused+scene+title": (
        "[the shot's input projection ; its context vector: the hidden state when the shot is "
        "masked, i.e. what the title around it says ; visible: its hidden state in the masked "
        "passes that leave it visible ; ahead: the next shot's context vector, what the title "
        "says comes next ; change: each of those four blocks' cosine distance to the previous "
        "shot's, how much they change at this shot (scene boundaries) ; scene-fused and "
        "scene: the mean fused vector and the mean context vector of the shot's scene, scenes "
        "cut as `mediafm scenes` cuts them ; title: the title's mean context vector] "
        "(default)"),
    "input+context+visible+ahead+scene-fused+scene+title": "[the default's blocks without "
                                                           "the change block] (the default "
                                                           "2026-12-07, before it)",
    "input+context+visible+ahead+scene-input+scene+title": "[the default's blocks with the "
                                                           "scene's mean input projection in "
                                                           "place of its mean fused vector] "
                                                           "(the default before the scene's "
                                                           "fused block, 2026-12-07)",
    "input+context+visible+ahead+scene-input+scene": "[the shot's input projection ; its "
                                                     "context vector: the hidden state when "
                                                     "the shot is masked, i.e. what the title "
                                                     "around it says ; visible: its hidden "
                                                     "state in the masked passes that leave it "
                                                     "visible ; ahead: the next shot's context "
                                                     "vector, what the title says comes next ; "
                                                     "scene-input and scene: the mean input "
                                                     "projection and the mean context vector "
                                                     "of the shot's scene, scenes cut as "
                                                     "`mediafm scenes` cuts them] (the "
                                                     "default before the title block, "
                                                     "2026-12-06)",
    "input+context+visible+ahead+scene": "[input projection ; context ; visible ; ahead ; the "
                                         "scene's mean context vector] (the default before "
                                         "the scene's input block, 2026-12-05)",
    "input+context+visible+ahead": "[input projection ; context ; visible ; ahead] (the "
                                   "default before the scene block)",
    "input+context+visible": "[input projection ; context ; visible] (the default before "
                             "the ahead block)",
    "input+context": "[input projection ; context] (the default before 2026-12-04)",
    "input+context+hidden": "[input projection ; context ; the final hidden state] (one more "
                            "pass)",
    "fused+context": "[the shot's fused vector itself ; context]",
    "context": "the context vector alone",
    "hidden": "the final hidden state with nothing masked (the spec's reading)",
    "input+hidden": "[input projection ; hidden]",
    "output": "the output projection, in fused dims",
}
# measured: benchmarks/README.md, catalog families (held out) and context quality
DEFAULT_READOUT = "input+context+visible+ahead+change+scene-fused+scene+title"
MODES = ("in-context", "clip-only")  # clips: the whole title around them, or alone
TITLE_POOLS = ("mean", "cls", "both")  # title embeddings: mean of the shots, [CLS], both


def readout_stamp(output: str) -> dict:
    """What a file made through ``output`` records of it: the readout, and for a readout
    with scene blocks the cut of its scenes (``changepoints.cut_name``): the same readout
    over scenes cut another way is other features, which heads and indexes must not mix."""
    from mediafm.changepoints import cut_name

    return {"readout": output, **({"scene_cut": cut_name()} if "+scene" in output else {})}


def recorded_cut(stamp: dict) -> str:
    """The scene cut of the file ``stamp`` describes ("" without scene blocks); files from
    before the cut was recorded cut at ``changepoints.LEGACY_CUT``."""
    from mediafm.changepoints import LEGACY_CUT

    return stamp.get("scene_cut", LEGACY_CUT) if "+scene" in (stamp.get("readout") or "") else ""
