# probe_recon.py OUT FTDIR STEPS [random] — the lead 'reconstruction error as a head input', fold 0: a frozen
# twin encoder (OUT's MAE weights, or untrained with `random`) gives per-token features and a masked-
# reconstruction error; MLP probes on features, features+error and error alone; volume AUC.
import os, sys, json, struct, csv, glob, math, numpy as np
_argv = sys.argv; sys.argv = sys.argv[:1]; sys.path.insert(0, os.environ.get('MAE_TWIN_DIR', os.path.join(os.path.dirname(__file__), '../../../shared/reference'))); import mae3d_ref as R; sys.argv = _argv
import torch, torch.nn as nn, torch.nn.functional as F, h5py
from sklearn.metrics import roc_auc_score
torch.set_num_threads(1); torch.manual_seed(0); rs = np.random.default_rng(0)
out, ex, steps = sys.argv[1], sys.argv[2], int(sys.argv[3]); rnd = len(sys.argv) > 4
a = R.parse_args(['--size', '32', '--patch', '8', '--dim', '96', '--depth', '3', '--heads', '3', '--dec-dim', '64', '--dec-depth', '1', '--dec-heads', '2'])
m = R.MAE3D(a)
if not rnd:
    raw = open(f'{out}/pretrain/model.safetensors', 'rb').read(); n = struct.unpack('<Q', raw[:8])[0]; hdr = json.loads(raw[8:8 + n]); sd = {}
    for k, v in hdr.items():
        if k != '__metadata__': s0, s1 = v['data_offsets']; sd[k] = torch.tensor(np.frombuffer(raw[8 + n + s0:8 + n + s1], np.float32).reshape(v['shape']).copy())
    m.load_state_dict(sd, strict=False)
m.eval()
@torch.no_grad()
def feats(win):  # (B,1,32,32,32) -> (B,64,96+1)
    tgt = m.patchify(win); B = tgt.shape[0]
    x = m.patch_embed(tgt) + m.pos
    for blk in m.blocks: x = blk(x)
    f = m.norm(x); err = torch.zeros(B, 64); cnt = torch.zeros(B, 64); g = torch.Generator().manual_seed(1)
    for p in range(4):
        keep = torch.randperm(64, generator=g)[:16]
        y = m.patch_embed(tgt)[:, keep] + m.pos[:, keep]
        for blk in m.blocks: y = blk(y)
        y = m.dec_embed(m.norm(y)); full = m.mask_token.expand(B, 64, y.shape[-1]).clone(); full[:, keep] = y
        z = full + m.dec_pos
        for blk in m.dec_blocks: z = blk(z)
        e = ((m.dec_pred(m.dec_norm(z)) - tgt) ** 2).mean(-1); msk = torch.ones(64); msk[keep] = 0
        err += e * msk; cnt += msk
    return torch.cat([f, (err / cnt.clamp(min=1))[..., None] * 20], -1)
f = h5py.File(sorted(glob.glob(f'{out}/ingest/shards/*.h5'))[0]); bykey = {}
for k in f['volumes']:
    s = f['volumes'][k].attrs['series_key']; bykey[s.decode() if isinstance(s, bytes) else s] = k
lab, les = {}, {}
for r in csv.DictReader(open(f'{ex}/labels.csv')):
    lab[r['series']] = (r['patient'], int(r['label']))
    if r['x']: les.setdefault(r['series'], []).append([float(r[q]) for q in 'xyz'])
pf = {r['patient']: int(r['fold']) for r in csv.DictReader(l for l in open(f'{ex}/splits.csv') if not l.startswith('#'))}
V = {}
for s in lab:
    d = f['volumes'][bykey[s]]; A = np.array(d.attrs['affine']).reshape(4, 4); arr = d[...].astype(np.float32)
    V[s] = (arr, [np.linalg.solve(A, [*p, 1])[:3][::-1] for p in les.get(s, [])])
train = [s for s in lab if pf[lab[s][0]] != 0]; test = [s for s in lab if pf[lab[s][0]] == 0]
refs = [(s, i) for s in train for i in range(len(V[s][1]))]
def crop(s, c=None):
    arr, L = V[s]; S = np.array(arr.shape)
    st = [int(np.clip(c[a_] - 16 + rs.integers(-12, 13), 0, S[a_] - 32)) if c is not None else int(rs.integers(0, S[a_] - 31)) for a_ in range(3)]
    x = arr[st[0]:st[0]+32, st[1]:st[1]+32, st[2]:st[2]+32]; t = np.zeros((4, 4, 4), np.float32)
    for l in L:
        q = np.floor((np.array(l) - st + 0.5) / 8).astype(int)
        if (q >= 0).all() and (q < 4).all(): t[tuple(q)] = 1
    return x, t.reshape(64)
# precompute a pool of training crops' features (frozen encoder)
X, T = [], []
for i in range(1200):
    if i % 2 == 0: s, j = refs[rs.integers(len(refs))]; x, t = crop(s, V[s][1][j])
    else: x, t = crop(train[rs.integers(len(train))])
    X.append(x); T.append(t)
FX = torch.cat([feats(torch.tensor(np.stack(X[i:i+16]))[:, None]) for i in range(0, len(X), 16)]); FT = torch.tensor(np.stack(T))
def score_all(head, use):
    out = {}
    for s in lab:
        arr = V[s][0]; S = arr.shape; m_ = 0
        starts = [sorted(set(list(range(0, S[a_] - 31, 16)) + [S[a_] - 32])) for a_ in range(3)]
        wins = [arr[z:z+32, y:y+32, x:x+32] for z in starts[0] for y in starts[1] for x in starts[2]]
        for i in range(0, len(wins), 16):
            F_ = feats(torch.tensor(np.stack(wins[i:i+16]))[:, None])[..., use]
            with torch.no_grad(): m_ = max(m_, float(torch.sigmoid(head(F_)).max()))
        out[s] = m_
    return out
for name, use in (('features', slice(0, 96)), ('features+recon', slice(0, 97)), ('recon only', slice(96, 97))):
    torch.manual_seed(0)
    dim = use.stop - use.start
    head = nn.Sequential(nn.Linear(dim, 64), nn.GELU(), nn.Linear(64, 1)); nn.init.constant_(head[-1].bias, math.log(0.01 / 0.99))
    opt = torch.optim.AdamW(head.parameters(), 1e-3)
    for step in range(steps):
        idx = torch.tensor(rs.integers(0, len(FX), 8)); lo = head(FX[idx][..., use]).squeeze(-1); t = FT[idx]
        p = torch.sigmoid(lo); ce = F.binary_cross_entropy_with_logits(lo, t, reduction='none'); pt = p * t + (1 - p) * (1 - t)
        loss = (ce * (1 - pt) ** 2).sum() / max(1, float(t.sum())); opt.zero_grad(); loss.backward(); opt.step()
    sc = score_all(head, use)
    r = [roc_auc_score([lab[s][1] for s in ss], [sc[s] for s in ss]) for ss in (train, test)]
    print(('untrained ' if rnd else 'pretrained ') + f'{name}: volume AUC train {r[0]:.3f} test {r[1]:.3f}', flush=True)
