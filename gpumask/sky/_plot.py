"""Figures of maps with matplotlib and WCSAxes: the code behind ``Map.plot``,
``Map.plot_mask`` and ``Map.plot_grid`` (gammapy 2.1's names, arguments and look).

matplotlib is imported inside the functions, so that ``import gpumask`` does not
import it.  Every function copies the map's data to the host once, explicitly,
through :meth:`Map.to_numpy` (counted by :func:`gpumask.count_transfers`).

Differences from gammapy, on purpose:

* a near-constant image (max - min below ``UNIFORM_RTOL`` of the largest
  magnitude, or all equal) is drawn as one colour with its value stated (a
  single colorbar tick ``"42 (uniform)"``, or the axes title without a colorbar)
  instead of stripes of round-off under a colorbar with a 20-digit tick;
* colorbars are added on the axes' own figure (no pyplot state), and a mask's
  colorbar names its two values (``False (excluded)``, ``True (used)``);
* ``Map.plot_mask`` of a mask that explains itself (``mask.provenance``) colours
  the excluded pixels by component kind (:data:`KIND_COLORS`), with a legend of
  the kinds and the fraction of the map each excludes (``by_kind``);
* ``Map.plot(masks={label: mask})`` overlays the edges of the excluded regions of
  one or more masks as contours with a legend (:func:`plot_contours`).
"""

from __future__ import annotations

import numpy as np
from astropy import units as u

__all__ = ["KIND_COLORS", "STRETCHES", "UNIFORM_RTOL", "plot", "plot_contours", "plot_grid", "plot_mask"]

#: stretches accepted by ``Map.plot`` (``astropy.visualization.simple_norm``).
STRETCHES = ("linear", "sqrt", "power", "log", "sinh", "asinh")
#: relative spread under which an image is drawn as uniform, with its value stated.
UNIFORM_RTOL = 1e-9
#: default contour colours of ``plot_contours`` (readable on afmhot and viridis).
MASK_COLORS = ("cyan", "magenta", "lime", "white", "orange", "deepskyblue", "red", "yellow")
#: fill colour of each component kind (``gpumask.sky.provenance.COMPONENT_KINDS``) in ``plot_mask``.
KIND_COLORS = {"catalog source": "#ff7f0e", "region": "#1f77b4", "significance blob": "#d62728",
               "dilation ring": "#e377c2", "mask": "#7f7f7f", "off sky": "#bcbd22"}


# ---------------------------------------------------------------------- helpers
def _image_shape_check(map_, what):
    if not map_.geom.is_flat:
        many = {ax.name: ax.nbin for ax in map_.geom.axes if ax.nbin > 1}
        raise ValueError(
            f"{what} draws images; this map has non-spatial axes with several bins {many}: "
            "draw one panel per bin with map.plot_grid(), pick one bin with "
            f"map.slice_by_idx({{{next(iter(many))!r}: 0}}) or reduce with map.sum_over_axes(keepdims=False)"
        )


def _host_image(map_, what):
    """The map's single image on the host (one counted copy), one-bin axes squeezed."""
    _image_shape_check(map_, what)
    data = map_.to_numpy()
    return data.reshape(map_.geom.data_shape_image)


def _default_axes(geom, ax, fig):
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig = plt.gcf() if fig is None else fig
    kwargs = {"projection": geom.to_image().wcs}
    if geom.projection in ("AIT", "MOL"):
        from astropy.visualization.wcsaxes.frame import EllipticalFrame  # noqa: PLC0415

        kwargs["frame_class"] = EllipticalFrame
    return fig.add_subplot(1, 1, 1, **kwargs)


def _format_axes(ax, geom):
    """Frame labels (gammapy's ``_plot_format``); plain matplotlib axes are left alone."""
    coords = getattr(ax, "coords", None)
    if coords is None:
        return ax
    if geom.frame == "galactic":
        labels = ("Galactic Longitude", "Galactic Latitude")
    else:
        labels = ("Right Ascension", "Declination")
    coords[0].set_axislabel(labels[0])
    coords[1].set_axislabel(labels[1])
    if geom.is_allsky:
        coords.frame.set_linewidth(0)
        for coord in coords:
            coord.grid(alpha=0.2, linestyle="solid", color="grey")
    return ax


def _add_colorbar(im, ax, axes_loc=None, **kwargs):
    """gammapy's ``add_colorbar``: a colorbar in an axes appended beside ``ax``."""
    import matplotlib.axes as maxes  # noqa: PLC0415
    from mpl_toolkits.axes_grid1 import make_axes_locatable  # noqa: PLC0415

    kwargs.setdefault("orientation", "vertical")
    loc = {"position": "right", "size": "5%", "pad": "2%", "axes_class": maxes.Axes}
    loc.update(axes_loc or {})
    cax = make_axes_locatable(ax).append_axes(**loc)
    return ax.figure.colorbar(im, cax=cax, **kwargs)


def _format_value(value):
    return f"{value:.6g}"


def _uniform_value(finite_values):
    """The value of a near-constant image (max - min <= UNIFORM_RTOL * max|v|), else None."""
    lo, hi = float(finite_values.min()), float(finite_values.max())
    if hi - lo <= UNIFORM_RTOL * max(abs(lo), abs(hi)):
        return 0.5 * (lo + hi)
    return None


# ---------------------------------------------------------------------- plot
def draw_image(ax, data, geom, unit, *, is_mask=False, add_cbar=False, stretch="linear", axes_loc=None,
               kwargs_colorbar=None, **kwargs):
    """Draw a host image ``data`` (shape ``geom.data_shape_image``) on ``ax``, as
    :func:`plot` does; returns the ``AxesImage``.  Used by :func:`plot` and
    :func:`plot_grid` (whose cubes cross to the host once)."""
    from astropy.visualization import simple_norm  # noqa: PLC0415
    from matplotlib.colors import ListedColormap, Normalize  # noqa: PLC0415

    if stretch not in STRETCHES:
        raise ValueError(f"stretch must be one of {STRETCHES}, got {stretch!r}")
    data = np.asarray(data, dtype=float)
    kwargs.setdefault("interpolation", "nearest")
    kwargs.setdefault("origin", "lower")
    kwargs.setdefault("cmap", "afmhot")
    kwargs_colorbar = dict(kwargs_colorbar or {})
    if is_mask:
        kwargs.setdefault("vmin", 0)
        kwargs.setdefault("vmax", 1)
        kwargs["cmap"] = ListedColormap(["black", "white"], name="mask")
    finite = np.isfinite(data)
    uniform = None
    if "norm" not in kwargs:
        vmin, vmax = kwargs.pop("vmin", None), kwargs.pop("vmax", None)
        if not finite.any():
            kwargs["norm"] = Normalize(0.0, 1.0)  # nothing to scale: an all-NaN image is blank
        elif is_mask or vmin is not None or vmax is not None:
            kwargs["norm"] = simple_norm(data[finite], stretch, vmin=vmin, vmax=vmax)
        else:
            uniform = _uniform_value(data[finite])
            if uniform is None:
                kwargs["norm"] = simple_norm(data[finite], stretch, vmin=vmin, vmax=vmax)
            else:
                # One colour for every pixel: the value sits at 0.6 of a wide linear range,
                # in the middle of a colormap bin, so round-off never straddles a bin edge.
                span = 2.0 * abs(uniform) if uniform != 0 else 1.0
                kwargs["norm"] = Normalize(uniform - 0.6 * span, uniform + 0.4 * span)
    im = ax.imshow(data, **kwargs)
    if add_cbar:
        kwargs_colorbar.setdefault("label", unit.to_string() if unit != u.dimensionless_unscaled else "")
        cbar = _add_colorbar(im, ax, axes_loc=axes_loc, **kwargs_colorbar)
        if is_mask:
            cbar.set_ticks([0.25, 0.75], labels=["False\n(excluded)", "True\n(used)"])
        elif uniform is not None:
            cbar.set_ticks([uniform], labels=[f"{_format_value(uniform)} (uniform)"])
    elif uniform is not None and not ax.get_title():
        text = f"uniform: {_format_value(uniform)}"
        if unit != u.dimensionless_unscaled:
            text += f" {unit.to_string()}"
        ax.set_title(text)
    _format_axes(ax, geom)
    ax.autoscale(enable=False)  # as gammapy: later scatter() calls keep the limits
    return im


def plot(map_, ax=None, fig=None, add_cbar=False, stretch="linear", axes_loc=None, kwargs_colorbar=None,
         masks=None, kwargs_masks=None, **kwargs):
    """Plot an image map on WCS axes: see :meth:`gpumask.Map.plot`."""
    data = _host_image(map_, "plot()")
    ax = _default_axes(map_.geom, ax, fig)
    draw_image(ax, data, map_.geom, map_.unit, is_mask=map_.is_mask, add_cbar=add_cbar, stretch=stretch,
               axes_loc=axes_loc, kwargs_colorbar=kwargs_colorbar, **kwargs)
    if masks is not None:
        plot_contours(ax, masks, geom=map_.geom, **(kwargs_masks or {}))
    return ax


# ---------------------------------------------------------------------- masks
def _edge_contour(ax, excluded, **kwargs):
    """Contour of the edge of ``excluded`` (host bool image), closed along the map border:
    the image is padded with one used pixel each side, so the 0.5 level runs on pixel edges."""
    ny, nx = excluded.shape
    padded = np.ones((ny + 2, nx + 2))
    padded[1:-1, 1:-1] = ~excluded
    x = np.arange(-1, nx + 1)
    y = np.arange(-1, ny + 1)
    return ax.contour(x, y, padded, levels=[0.5], **kwargs)


def plot_mask(map_, ax=None, fig=None, *, hatch=None, contour=None, by_kind=None, **kwargs):
    """Shade (or hatch) the excluded pixels of a boolean map: see :meth:`gpumask.Map.plot_mask`.

    ``by_kind``: colour the excluded pixels by the kind of the component that
    excludes them (:data:`KIND_COLORS`), with a legend naming each kind present and
    the fraction of the map it excludes.  None (default): when the mask has a
    provenance and neither ``colors`` nor ``hatch`` is given.  True without a
    provenance raises ValueError.  Costs one more counted host copy (the kinds).

    Examples
    --------
    >>> mask = gpumask.exclusion_mask(geom, catalog, regions=regions, explain=True)  # doctest: +SKIP
    >>> ax = mask.plot_mask()     # catalog sources and regions in their colours, with a legend  # doctest: +SKIP
    """
    if not map_.is_mask:
        raise ValueError(f"plot_mask() draws boolean maps (True = used, False = excluded), this one is {map_.dtype}")
    if by_kind not in (None, True, False):
        raise TypeError(f"by_kind must be None (auto), True or False, got {by_kind!r}")
    prov = map_.provenance
    if by_kind is None:
        by_kind = prov is not None and hatch is None and "colors" not in kwargs
    elif by_kind and prov is None:
        raise ValueError("by_kind=True needs a mask with a provenance (built with explain=True, or read "
                         "from such a file); this mask has none")
    data = _host_image(map_, "plot_mask()")
    ax = _default_axes(map_.geom, ax, fig)
    excluded = ~data
    kwargs.setdefault("alpha", 0.5)
    if by_kind:
        _draw_kinds(ax, prov.kind_image(), **kwargs)
    else:
        kwargs.setdefault("colors", "w")
    if excluded.any():
        if not by_kind:
            if hatch is not None:
                kwargs["hatches"] = [hatch]
            ax.contourf(data.astype(float), levels=[0, 0.5], **kwargs)
        if contour is not None and contour is not False:
            if contour is True:
                contour = {"colors": kwargs.get("colors", "w")}
            elif isinstance(contour, str):
                contour = {"colors": contour}
            elif not isinstance(contour, dict):
                raise TypeError(f"contour must be None, True, a colour name or a dict, got {contour!r}")
            _edge_contour(ax, excluded, **contour)
    _format_axes(ax, map_.geom)
    ax.autoscale(enable=False)
    return ax


def _draw_kinds(ax, kinds, **kwargs):
    """The kind image (int8, -1 usable) as colours of :data:`KIND_COLORS`, and the legend."""
    from matplotlib.colors import BoundaryNorm, ListedColormap  # noqa: PLC0415
    from matplotlib.patches import Patch  # noqa: PLC0415

    from .provenance import COMPONENT_KINDS  # noqa: PLC0415

    n = len(COMPONENT_KINDS)
    cmap = ListedColormap([KIND_COLORS[k] for k in COMPONENT_KINDS], name="mask kinds")
    kwargs.setdefault("interpolation", "nearest")
    kwargs.setdefault("origin", "lower")
    image = np.ma.masked_less(kinds.astype(float), 0)
    ax.imshow(image, cmap=cmap, norm=BoundaryNorm(np.arange(-0.5, n), n), **kwargs)
    counts = np.bincount(kinds[kinds >= 0].astype(np.int64), minlength=n)
    alpha = kwargs.get("alpha")
    handles = [Patch(facecolor=KIND_COLORS[k], alpha=alpha, label=f"{k} ({100 * counts[i] / kinds.size:.1f}%)")
               for i, k in enumerate(COMPONENT_KINDS) if counts[i]]
    if handles:
        ax.legend(handles=handles, loc="upper right", fontsize="small", framealpha=0.8)


def plot_contours(ax, masks, colors=None, *, geom=None, linewidths=1.5, linestyles="solid", legend=True,
                  kwargs_legend=None):
    """Outline the excluded regions (False) of one or more boolean maps, with a legend.

    Parameters
    ----------
    ax : `~astropy.visualization.wcsaxes.WCSAxes`
        Axes of an image drawn on the masks' geometry (e.g. returned by ``Map.plot``).
    masks : dict of {str: `~gpumask.Map`} or `~gpumask.Map`
        Legend label -> boolean map (one image; one-bin axes are squeezed).  Each
        crosses to the host once (counted).
    colors : list of str, optional
        One colour per mask (default: ``MASK_COLORS`` in turn).
    geom : `~gpumask.WcsGeom`, optional
        The drawn image's geometry; every mask must share its image geometry.
    linewidths, linestyles : float or list, str or list
        One value for all masks, or one per mask.
    legend : bool
        Add a legend (one line per mask, in the given order).
    kwargs_legend : dict, optional
        Passed to ``ax.legend`` (default ``loc="upper right"``, small font).

    Returns
    -------
    handles : list of `~matplotlib.lines.Line2D`
        The legend handles, one per mask.

    Examples
    --------
    >>> ax = sqrt_ts.plot(add_cbar=True)                            # doctest: +SKIP
    >>> plot_contours(ax, {"catalog": catalog_mask, "significance": sig_mask})  # doctest: +SKIP
    """
    from matplotlib.lines import Line2D  # noqa: PLC0415

    from .maps import Map  # noqa: PLC0415

    if isinstance(masks, Map):
        masks = {"mask": masks}
    if not isinstance(masks, dict) or not masks:
        raise TypeError(f"masks must be a non-empty dict {{label: boolean Map}} or a Map, got {type(masks).__name__}")
    n = len(masks)

    def per_mask(value, name):
        if isinstance(value, (list, tuple)):
            if len(value) != n:
                raise ValueError(f"{name} needs one value per mask ({n}), got {len(value)}")
            return list(value)
        return [value] * n

    colors = per_mask(colors, "colors") if colors is not None else [MASK_COLORS[i % len(MASK_COLORS)] for i in range(n)]
    widths = per_mask(linewidths, "linewidths")
    styles = per_mask(linestyles, "linestyles")
    handles = []
    for (label, mask), color, width, style in zip(masks.items(), colors, widths, styles):
        if not isinstance(mask, Map) or not mask.is_mask:
            raise TypeError(f"mask {label!r} must be a boolean gpumask Map, got {type(mask).__name__}"
                            + (f" of {mask.dtype}" if isinstance(mask, Map) else ""))
        if geom is not None and mask.geom.to_image() != geom.to_image():
            raise ValueError(
                f"mask {label!r} is on another geometry than the image ({mask.geom.data_shape_image} vs "
                f"{geom.data_shape_image}, or another WCS); resample it with mask.interp_to_geom(geom)"
            )
        excluded = ~_host_image(mask, f"mask {label!r}")
        if excluded.any():  # an all-True mask has no edge to draw
            _edge_contour(ax, excluded, colors=[color], linewidths=width, linestyles=style)
        handles.append(Line2D([], [], color=color, linewidth=width, linestyle=style, label=str(label)))
    if legend:
        kw = {"loc": "upper right", "fontsize": "small", "framealpha": 0.8}
        kw.update(kwargs_legend or {})
        ax.legend(handles=handles, **kw)
    return handles


# ---------------------------------------------------------------------- cubes
def _energy_format(quantity):
    """gammapy's ``energy_unit_format``: the unit of the value's decade (eV ... PeV)."""
    ev = quantity.to_value(u.eV)
    i = int(np.floor(np.log10(ev) / 3)) if ev > 0 else 0
    unit = (u.eV, u.keV, u.MeV, u.GeV, u.TeV, u.PeV)[min(max(i, 0), 5)]
    value = quantity.to_value(unit)
    digits = int(np.floor(np.log10(abs(value)))) if value != 0 else 0
    prec = (2, 1, 0)[digits] if 0 <= digits < 3 else (2 if digits < 0 else 0)
    return f"{value:0.{prec}f} {unit}"


def bin_title(axis, idx) -> str:
    """Panel title of bin ``idx`` of ``axis`` as gammapy's ``plot_grid``: ``"Energy 1.00 TeV - 3.16 TeV"``."""
    energy = axis.name in ("energy", "energy_true")
    if axis.node_type == "center":
        info = _energy_format(axis.center[idx]) if energy else f"{axis.center[idx]:.1f}"
    elif energy:
        info = f"{_energy_format(axis.edges[idx])} - {_energy_format(axis.edges[idx + 1])}"
    else:
        info = f"{axis.edges_min[idx]:.1f} - {axis.edges_max[idx]:.1f}"
    return f"{axis.name.capitalize()} {info}"


def plot_grid(map_, ncols=3, figsize=None, **kwargs):
    """One panel per bin of the map's non-spatial axis: see :meth:`gpumask.Map.plot_grid`."""
    import matplotlib.pyplot as plt  # noqa: PLC0415

    geom = map_.geom
    many = [ax for ax in geom.axes if ax.nbin > 1]
    if not geom.axes or not many:
        raise ValueError("plot_grid() draws one panel per bin of a non-spatial axis; this map is one image: use plot()")
    if len(many) > 1:
        raise ValueError(
            f"plot_grid() supports one non-spatial axis with several bins, this map has "
            f"{ {ax.name: ax.nbin for ax in many} }; select with map.slice_by_idx(...) first"
        )
    if not isinstance(ncols, (int, np.integer)) or ncols < 1:
        raise ValueError(f"ncols must be a positive integer, got {ncols!r}")
    axis = many[0]
    names = [ax.name for ax in geom.axes]
    data = map_.to_numpy()  # the whole cube crosses once
    dim = len(names) - 1 - names.index(axis.name)  # data dims: reversed axes, then (y, x)
    cols = min(int(ncols), axis.nbin)
    rows = 1 + (axis.nbin - 1) // cols
    if figsize is None:
        figsize = (12, 12 * rows / cols)
    fig, axes = plt.subplots(ncols=cols, nrows=rows, subplot_kw={"projection": geom.to_image().wcs},
                             figsize=figsize, gridspec_kw={"hspace": 0.1, "wspace": 0.1}, squeeze=False)
    for idx in range(cols * rows):
        ax = axes.flat[idx]
        if idx >= axis.nbin:
            ax.set_visible(False)
            continue
        image = np.take(data, idx, axis=dim).reshape(geom.data_shape_image)
        draw_image(ax, image, geom, map_.unit, is_mask=map_.is_mask, **kwargs)
        ax.set_title(bin_title(axis, idx))
        lon, lat = ax.coords[0], ax.coords[1]
        lon.set_ticks_position("b")
        lat.set_ticks_position("l")
        row, col = divmod(idx, cols)
        if col > 0:
            lat.set_ticklabel_visible(False)
            lat.set_axislabel("")
        if row < rows - 1:
            lon.set_ticklabel_visible(False)
            lon.set_axislabel("")
    return axes
