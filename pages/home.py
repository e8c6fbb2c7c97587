"""Home: what a GAN is, the objective, and where to go next."""

import streamlit as st

from gan_core import PRESETS
from gan_core.app import nav, session
from gan_core.links import lesson_link_params
from gan_core.paths import ASSETS_DIR

nav.require_router("home")
st.title("GAN Playground", anchor=False)
st.markdown("#### Watch a counterfeiter and the police teach each other, live in your browser.")

st.markdown(
    """
A **generative adversarial network** is two neural networks in a contest:

- The **generator G** is a *counterfeiter*. It turns random noise **z** into fake "bills" (images, or points).
- The **discriminator D** is the *police*. It looks at a bill and says how likely it is real.
"""
)
# The diagram is wide (about 3:1): beside the text it squeezed the text into a narrow column at 1024 px.
st.image(str(ASSETS_DIR / "gan_diagram.svg"), width="stretch")
st.markdown(
    """
They train in turns. The police learn to catch the fakes; the counterfeiter learns, from the police's
own judgement, how to make fakes that pass. Neither sees the rules of the other: each only gets the
gradient of its own loss. When the counterfeiter wins completely, the police can only guess: every
bill looks real with probability ½.
"""
)

st.subheader("The game in one line", anchor=False)
st.latex(r"\min_G \max_D \; V(D, G) = \mathbb{E}_{x \sim p_\text{data}}\big[\log D(x)\big]"
         r" + \mathbb{E}_{z \sim p_z}\big[\log\big(1 - D(G(z))\big)\big]")
st.markdown(
    "D pushes both terms up (say *real* to real bills, *fake* to fakes); G pushes the second one down. "
    "In practice G maximises $\\log D(G(z))$ instead (the **non-saturating** loss, `bce` here): the original "
    "$\\log(1 - D(G(z)))$ gives G almost no gradient exactly when the police are winning. The "
    "`ring8-saturating` lesson shows what that does."
)

st.subheader("Try it", anchor=False)
cards = {  # page key -> what it offers; titles and icons come from the page registry
    "train": "Pick a preset, press Start, and watch the losses, the samples and the police's verdicts update every second.",
    "lab": "A GAN on 2D points: D's decision surface, and arrows showing where G's gradient pushes each fake. "
           "Step through one update at a time.",
    "latent": "Walk between two points of the noise space and watch one drawing morph into another. Save the walk as a GIF.",
    "class": "With a conditional GAN, choose the class to draw: same style, another digit or garment.",
    "runs": "Your saved runs: numbers, downloads, share, rename, delete, upload a checkpoint.",
}
keys = list(cards)
for first in range(0, len(keys), 3):  # three a row: the titles stay whole on a 1024 px projector
    for col, key in zip(st.columns(3), keys[first:first + 3]):
        page = nav.page_info(key)
        with col.container(border=True, height="stretch"):
            st.page_link(page.path, label=f"**{page.title}**", icon=page.icon)
            st.caption(cards[key])

lessons = [p for p in PRESETS.values() if p.lesson]
with st.expander("Lessons for the classroom: presets that fail on purpose"):
    for p in lessons:
        st.markdown(f"- **`{p.name}`**: {p.description.removeprefix('LESSON: ')}. *Watch:* {p.lesson}.")
        st.page_link(nav.page_path("train"), label=f"Open {p.name} on the Train page", icon=":material/link:",
                     query_params=lesson_link_params(p.name))
    st.caption("Each link opens the Train page with the lesson's setup, the settings that make the lesson locked; "
               "share the page's address with the class (the Train page's **Copy link** makes links of any setup). "
               "You can also choose them from the Preset box on the Train page (2D ones also in the 2D lab).")

st.caption(f"Running on **{session.device_text()}**. {session.manager().load().capacity_text()} "
           "Each browser has its own run: the tabs of one browser share it (they share one session cookie), so a "
           "second run needs another browser or a private window.")
