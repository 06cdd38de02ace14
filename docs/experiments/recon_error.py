# recon_error.py OUT LABELS.csv [random] — the MAE's masked-reconstruction error as a label-free lesion
# score: loads OUT/pretrain/model.safetensors into the PyTorch twin (or a fresh, untrained twin with
# `random`), predicts every token of every labeled volume from context (8 seeded masks of 75%),
# and prints the volume AUC of the maximum token error and where lesion tokens rank in their volume.
# The demo's 32^3 crop, 8^3 patch, width 96, depth 3 and decoder 64x1 are assumed.
import os, sys, json, struct, csv, glob, math, numpy as np, torch, h5py
sys.path.insert(0, os.environ.get('MAE_TWIN_DIR', os.path.join(os.path.dirname(__file__), '../../../shared/reference'))); _argv = sys.argv; sys.argv = sys.argv[:1]; import mae3d_ref as R; sys.argv = _argv
from sklearn.metrics import roc_auc_score
torch.set_num_threads(1); torch.manual_seed(0)
out, labels = sys.argv[1], sys.argv[2]
raw = open(f'{out}/pretrain/model.safetensors', 'rb').read()
n = struct.unpack('<Q', raw[:8])[0]; hdr = json.loads(raw[8:8 + n]); base = 8 + n
sd = {}
for k, v in hdr.items():
    if k == '__metadata__': continue
    a, b = v['data_offsets']; sd[k] = torch.tensor(np.frombuffer(raw[base + a:base + b], np.float32).reshape(v['shape']).copy())
a = R.parse_args(['--size', '32', '--patch', '8', '--dim', '96', '--depth', '3', '--heads', '3', '--dec-dim', '64', '--dec-depth', '1', '--dec-heads', '2'])
m = R.MAE3D(a)
if len(sys.argv) < 4: print(m.load_state_dict(sd, strict=False))
m.eval()
def recon_err(win):  # win (B,1,32,32,32) -> (B,64) mean squared error of each token, predicted when masked
    tgt = m.patchify(win); B = tgt.shape[0]; err = torch.zeros(B, 64); cnt = torch.zeros(B, 64)
    g = torch.Generator().manual_seed(1)
    for p in range(8):
        perm = torch.randperm(64, generator=g); keep = perm[:16]
        x = m.patch_embed(tgt) + m.pos; x = x[:, keep]
        for blk in m.blocks: x = blk(x)
        x = m.dec_embed(m.norm(x))
        full = m.mask_token.expand(B, 64, x.shape[-1]).clone(); full[:, keep] = x
        y = full + m.dec_pos
        for blk in m.dec_blocks: y = blk(y)
        pred = m.dec_pred(m.dec_norm(y))
        e = ((pred - tgt) ** 2).mean(-1); msk = torch.ones(64); msk[keep] = 0
        err += e * msk; cnt += msk
    return err / cnt
f = h5py.File(sorted(glob.glob(f'{out}/ingest/shards/*.h5'))[0]); bykey = {}
for k in f['volumes']:
    s = f['volumes'][k].attrs['series_key']; bykey[s.decode() if isinstance(s, bytes) else s] = k
lab, les = {}, {}
for r in csv.DictReader(open(labels)):
    lab[r['series']] = int(r['label'])
    if r['x']: les.setdefault(r['series'], []).append([float(r[q]) for q in 'xyz'])
ys, sc, ranks = [], [], []
with torch.no_grad():
    for s in lab:
        d = f['volumes'][bykey[s]]; arr = d[...].astype(np.float32); A = np.array(d.attrs['affine']).reshape(4, 4)
        Z, Y, X = arr.shape; emap = np.zeros(((Z + 31) // 32 * 4, (Y + 31) // 32 * 4, (X + 31) // 32 * 4), np.float32)
        mn = arr.min(); pad = np.full((emap.shape[0] * 8, emap.shape[1] * 8, emap.shape[2] * 8), mn, np.float32); pad[:Z, :Y, :X] = arr
        wins, pos = [], []
        for z in range(0, pad.shape[0], 32):
            for y in range(0, pad.shape[1], 32):
                for x in range(0, pad.shape[2], 32): wins.append(pad[z:z+32, y:y+32, x:x+32]); pos.append((z, y, x))
        E = recon_err(torch.tensor(np.stack(wins))[:, None]).numpy()
        for (z, y, x), e in zip(pos, E): emap[z//8:z//8+4, y//8:y//8+4, x//8:x//8+4] = e.reshape(4, 4, 4)
        valid = np.zeros_like(emap, bool); valid[:math.ceil(Z/8), :math.ceil(Y/8), :math.ceil(X/8)] = True
        # tokens fully inside the volume only (padding makes its own error)
        inside = np.zeros_like(emap, bool); inside[:Z//8, :Y//8, :X//8] = True
        ev = emap[inside]; ys.append(lab[s]); sc.append(float(ev.max()))
        for l in les.get(s, []):
            ijk = np.linalg.solve(A, [*l, 1])[:3][::-1]; t = tuple(int(c // 8) for c in ijk)
            if all(t[i] < emap.shape[i] for i in range(3)) and inside[t]: ranks.append(float((ev < emap[t]).mean()))
print('volume AUC of max token recon error: %.3f' % roc_auc_score(ys, sc))
print('lesion token error percentile within its volume: median %.2f, share above 90th: %.2f (n=%d)' % (np.median(ranks), np.mean(np.array(ranks) > 0.9), len(ranks)))
