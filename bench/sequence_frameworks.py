"""The sequence challenger's framework choice, measured: the same BiLSTM (30,000 windows of 32
ticks x 9 features, 32 units each way, batch 256) trained and run on the CPU in Keras 3 on JAX
and in PyTorch. Prints one JSON line: import time, first and steady epoch, prediction rate.

    .venv/bin/python bench/sequence_frameworks.py keras
    python -m venv /tmp/tv && /tmp/tv/bin/pip install torch numpy && /tmp/tv/bin/python bench/sequence_frameworks.py torch

Installed sizes: ``du -sm <venv>/lib/python3.11/site-packages/*``. PyTorch is not a finlake
dependency; ARCHITECTURE.md ("the trading sequence challenger") has the figures and the choice.
"""
import os, sys, time, json
import numpy as np
fw = sys.argv[1]
N, T, F, H, EPOCHS, BATCH = 30000, 32, 9, 32, 2, 256
rng = np.random.default_rng(0)
x = rng.normal(size=(N, T, F)).astype("float32"); y = rng.integers(0, 3, N)
t0 = time.perf_counter()
if fw == "keras":
    os.environ["KERAS_BACKEND"] = "jax"
    import keras
    imp = time.perf_counter() - t0
    m = keras.Sequential([keras.Input((T, F)), keras.layers.Bidirectional(keras.layers.LSTM(H)),
                          keras.layers.Dense(3, activation="softmax")])
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    t1 = time.perf_counter(); m.fit(x, y, epochs=1, batch_size=BATCH, verbose=0); first = time.perf_counter() - t1
    t1 = time.perf_counter(); m.fit(x, y, epochs=EPOCHS, batch_size=BATCH, verbose=0); ep = (time.perf_counter() - t1) / EPOCHS
    m.predict(x[:1000], batch_size=4096, verbose=0)
    t1 = time.perf_counter(); m.predict(x, batch_size=4096, verbose=0); pred = time.perf_counter() - t1
else:
    import torch
    torch.set_num_threads(2)
    imp = time.perf_counter() - t0
    class M(torch.nn.Module):
        def __init__(s):
            super().__init__(); s.l = torch.nn.LSTM(F, H, batch_first=True, bidirectional=True); s.d = torch.nn.Linear(2 * H, 3)
        def forward(s, v):
            _, (h, _) = s.l(v); return s.d(torch.cat([h[0], h[1]], 1))
    m = M(); opt = torch.optim.Adam(m.parameters()); X = torch.from_numpy(x); Y = torch.from_numpy(y)
    def epoch():
        for i in range(0, N, BATCH):
            opt.zero_grad(); loss = torch.nn.functional.cross_entropy(m(X[i:i+BATCH]), Y[i:i+BATCH]); loss.backward(); opt.step()
    t1 = time.perf_counter(); epoch(); first = time.perf_counter() - t1
    t1 = time.perf_counter(); [epoch() for _ in range(EPOCHS)]; ep = (time.perf_counter() - t1) / EPOCHS
    with torch.no_grad():
        t1 = time.perf_counter(); [torch.softmax(m(X[i:i+4096]), 1) for i in range(0, N, 4096)]; pred = time.perf_counter() - t1
print(json.dumps({"framework": fw, "import_s": round(imp, 2), "first_epoch_s": round(first, 2), "epoch_s": round(ep, 2),
                  "predict_rows_per_s": round(N / pred), "windows": N, "steps": T, "features": F, "hidden": H}))
