# detector_calibration.py OUT FTDIR STEPS cnn|vit|hybrid LO HI — can ANY small detector learn the cohort's lesions?
# Trains a small PyTorch 3D CNN, a ViT of the detector's size, or that ViT on a convolutional stem (hybrid: three
# conv layers, stride 8 in all, one 64-channel token per 8^3 voxels) (not project code) with the detector's
# protocol (32^3 crops, half centred on lesions, focal loss on the 8^3 token holding a centre) on the
# training patients of fold 0 (FTDIR/labels.csv and splits.csv, as `vesalius finetune` writes them),
# stored intensities windowed to [LO, HI]; prints the volume AUC (max token probability) on the
# training and the held-out patients. Reads the first shard of OUT/ingest/shards.
import h5py, numpy as np, csv, sys, torch, torch.nn as nn, torch.nn.functional as F, glob, math
from sklearn.metrics import roc_auc_score
torch.set_num_threads(1); torch.manual_seed(0); rs = np.random.default_rng(0)
out, ex = sys.argv[1], sys.argv[2]; steps = int(sys.argv[3]); kind = sys.argv[4]; lo_, hi_ = float(sys.argv[5]), float(sys.argv[6])
f = h5py.File(sorted(glob.glob(f'{out}/ingest/shards/*.h5'))[0])
bykey = {}
for k in f['volumes']:
    a = f['volumes'][k].attrs; s = a['series_key']; bykey[s.decode() if isinstance(s, bytes) else s] = k
lab, les = {}, {}
for r in csv.DictReader(open(f'{ex}/labels.csv')):
    lab[r['series']] = (r['patient'], int(r['label']))
    if r['x']: les.setdefault(r['series'], []).append([float(r[k]) for k in 'xyz'])
pf = {r['patient']: int(r['fold']) for r in csv.DictReader(l for l in open(f'{ex}/splits.csv') if not l.startswith('#'))}
V = {}
for s in lab:
    d = f['volumes'][bykey[s]]; A = np.array(d.attrs['affine']).reshape(4, 4); arr = np.clip((d[...].astype(np.float32) - lo_) / (hi_ - lo_), 0, 1)
    L = [np.linalg.solve(A, [*p, 1])[:3][::-1] for p in les.get(s, [])]  # zyx
    V[s] = (arr, L)
train = [s for s in lab if pf[lab[s][0]] != 0]; test = [s for s in lab if pf[lab[s][0]] == 0]
refs = [(s, i) for s in train for i in range(len(V[s][1]))]

class Block(nn.Module):
    def __init__(s, d, h):
        super().__init__(); s.n1 = nn.LayerNorm(d, eps=1e-6); s.att = nn.MultiheadAttention(d, h, batch_first=True)
        s.n2 = nn.LayerNorm(d, eps=1e-6); s.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))
    def forward(s, x):
        y = s.n1(x); x = x + s.att(y, y, y, need_weights=False)[0]
        return x + s.mlp(s.n2(x))
class ViT(nn.Module):
    def __init__(s, dim=96, depth=3, P=8):
        super().__init__(); s.P = P; s.emb = nn.Linear(P ** 3, dim); s.pos = nn.Parameter(torch.zeros(1, 64, dim))
        s.blocks = nn.ModuleList([Block(dim, 3) for _ in range(depth)]); s.norm = nn.LayerNorm(dim, eps=1e-6)
        s.head = nn.Sequential(nn.Linear(dim, 64), nn.GELU(), nn.Linear(64, 1))
    def forward(s, v):
        b, _, Z, Y, X = v.shape; P = s.P; gz, gy, gx = Z // P, Y // P, X // P
        t = v.reshape(b, gz, P, gy, P, gx, P).permute(0, 1, 3, 5, 2, 4, 6).reshape(b, gz * gy * gx, P ** 3)
        x = s.emb(t)
        if x.shape[1] == 64: x = x + s.pos
        for blk in s.blocks: x = blk(x)
        return s.head(s.norm(x)).reshape(b, 1, gz, gy, gx)
class Hybrid(ViT):
    def __init__(s, dim=96):
        super().__init__(dim)
        s.stem = nn.Sequential(nn.Conv3d(1, 16, 3, 2, 1), nn.GELU(), nn.Conv3d(16, 32, 3, 2, 1), nn.GELU(),
                               nn.Conv3d(32, 64, 3, 2, 1), nn.GELU())
        s.emb = nn.Linear(64, dim)
    def forward(s, v):
        b = v.shape[0]; f = s.stem(v); gz, gy, gx = f.shape[2:]
        x = s.emb(f.flatten(2).transpose(1, 2))
        if x.shape[1] == 64: x = x + s.pos
        for blk in s.blocks: x = blk(x)
        return s.head(s.norm(x)).reshape(b, 1, gz, gy, gx)
net = ViT() if kind == 'vit' else Hybrid() if kind == 'hybrid' else nn.Sequential(nn.Conv3d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv3d(16, 32, 3, 2, 1), nn.ReLU(),
                    nn.Conv3d(32, 32, 3, padding=1), nn.ReLU(), nn.Conv3d(32, 64, 3, 2, 1), nn.ReLU(),
                    nn.Conv3d(64, 64, 3, padding=1), nn.ReLU(), nn.Conv3d(64, 64, 3, 2, 1), nn.ReLU(), nn.Conv3d(64, 1, 1))
nn.init.constant_((net.head[-1] if kind != 'cnn' else net[-1]).bias, math.log(0.01 / 0.99))
opt = torch.optim.AdamW(net.parameters(), 1e-3)
def crop(s, c=None):
    arr, L = V[s]; S = np.array(arr.shape)
    st = [int(np.clip(c[a] - 16 + rs.integers(-8, 9), -8, S[a] - 24)) if c is not None else rs.integers(-8, max(S[a] - 24, -7)) for a in range(3)]
    out = np.zeros((32, 32, 32), np.float32); t = np.zeros((4, 4, 4), np.float32)
    sl = [slice(max(st[a], 0), min(st[a] + 32, S[a])) for a in range(3)]
    sub = arr[tuple(sl)]; o = [sl[a].start - st[a] for a in range(3)]
    out[o[0]:o[0] + sub.shape[0], o[1]:o[1] + sub.shape[1], o[2]:o[2] + sub.shape[2]] = sub
    for l in L:
        q = np.floor((np.array(l) - st + 0.5) / 8).astype(int)
        if (q >= 0).all() and (q < 4).all(): t[tuple(q)] = 1
    return out, t
for step in range(steps):
    xs, ts = [], []
    for b in range(8):
        if rs.random() < 0.5: s, i = refs[rs.integers(len(refs))]; x, t = crop(s, V[s][1][i])
        else: x, t = crop(train[rs.integers(len(train))])
        xs.append(x); ts.append(t)
    x = torch.tensor(np.stack(xs))[:, None]; t = torch.tensor(np.stack(ts))[:, None]
    lo = net(x); p = torch.sigmoid(lo)
    ce = F.binary_cross_entropy_with_logits(lo, t, reduction='none')
    pt = p * t + (1 - p) * (1 - t); loss = (ce * (1 - pt) ** 2 * (0.25 * t + 0.75 * (1 - t))).sum() / max(1, t.sum())
    opt.zero_grad(); loss.backward()
    if kind == 'hybrid': nn.utils.clip_grad_norm_(net.parameters(), 1.0)  # diverged unclipped at lr 1e-3
    opt.step()
    if step % 250 == 0: print(step, float(loss), flush=True)
def score(s):
    arr = V[s][0]; P = [(-n) % 8 for n in arr.shape]
    x = np.pad(arr, [(0, p) for p in P])
    with torch.no_grad():
        if kind == 'cnn': return float(torch.sigmoid(net(torch.tensor(x)[None, None])).max())
        P2 = [(-n) % 32 for n in arr.shape]; x = np.pad(arr, [(0, p) for p in P2]); m = 0
        for z in range(0, x.shape[0], 32):
            for y in range(0, x.shape[1], 32):
                w = [x[z:z+32, y:y+32, xx:xx+32] for xx in range(0, x.shape[2], 32)]
                m = max(m, float(torch.sigmoid(net(torch.tensor(np.stack(w))[:, None])).max()))
        return m
for part, ss in (('train', train), ('test', test)):
    y = [lab[s][1] for s in ss]; p = [score(s) for s in ss]
    print(part, 'AUC %.3f' % roc_auc_score(y, p))
