"""Command line: ``python -m encoders {list,convert,embed}``."""
from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    import encoders

    p = argparse.ArgumentParser(prog="python -m encoders", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="list encoder configs and CLIP spaces")
    c = sub.add_parser("convert", help="official imagebind_huge.pth -> per-modality safetensors")
    c.add_argument("checkpoint")
    c.add_argument("out_dir")
    c.add_argument("--modalities", nargs="*", default=None)
    c.add_argument("--config", default="imagebind_huge")
    e = sub.add_parser("embed", help="embed files and print their cosine similarities")
    e.add_argument("modality", choices=["audio", "depth", "thermal", "imu", "vision", "text"])
    e.add_argument("inputs", nargs="+")
    e.add_argument("--model", default=None, help="encoder config name (default: the pocket models)")
    e.add_argument("--checkpoint", default=None)
    e.add_argument("--out", default=None, help="save the [N, D] embeddings to this .safetensors file")
    args = p.parse_args(argv)

    if args.cmd == "list":
        for name in encoders.list_models():
            cfg = encoders.get_config(name)
            print(f"{name:24s} space={cfg['space']:20s} modalities={','.join(cfg['modalities'])}")
        print()
        for s in encoders.list_spaces():
            sp = encoders.get_space(s)
            print(f"space {sp.name:20s} {sp.dim:5d}-d  {sp.description}")
        return 0
    if args.cmd == "convert":
        for path in encoders.convert_imagebind(args.checkpoint, args.out_dir, args.modalities, args.config):
            print(path)
        return 0
    model = args.model
    if args.checkpoint:
        model = encoders.create(args.model or encoders.DEFAULT_MODEL, modalities=(args.modality,),
                                checkpoint=args.checkpoint)
    enc = encoders.resolve_encoder(model, args.modality)
    emb = enc.embed(args.inputs, output="unit")
    print(f"{len(args.inputs)} x {emb.shape[1]}-d embeddings in space {enc.space}")
    sims = emb @ emb.T
    for name, row in zip(args.inputs, sims):
        print(f"{name[-30:]:>30s} " + " ".join(f"{v:6.3f}" for v in row.tolist()))
    if args.out:
        from safetensors.torch import save_file

        save_file({"embeddings": emb.contiguous()}, args.out, metadata={"space": enc.space.name})
        print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
