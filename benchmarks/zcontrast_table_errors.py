"""Interpolation errors of the registry-depth table, measured on the table itself.

Leave one boundary depth k out: the model built without it predicts the held run (after
the occupancy correction) at N = k+2..41; rms and max relative deviation per site beside
the held run's and the model's frozen-phonon standard errors; what they leave is the
interpolation error. Leave one Br fraction out: the model without
it against that fraction's regular run, for a linear and a quadratic b fit.

    PYTHONPATH=src python -W ignore benchmarks/zcontrast_table_errors.py [table.nc]
"""
import sys, numpy as np, xarray as xr
from nanodomains.stem.zcontrast import RegistryModel
from nanodomains.stem.zcontrast import load_registry_table
tab=xr.load_dataset(sys.argv[1]) if len(sys.argv) > 1 else load_registry_table()
ks=list(tab.regular_cells.values)
fullm=RegistryModel(tab)
corr=xr.DataArray(fullm._occupancy_corrected(tab.intensity_configs.mean('config').values), dims=('br_fraction','regular_cells','thickness_cells','site'), coords={c: tab[c] for c in ('br_fraction','regular_cells','thickness_cells','site')})
print('ks', ks)
res=[]
for held in [k for k in ks if 0<k<max(ks)]:
    m=RegistryModel(tab.sel(regular_cells=[k for k in ks if k!=held]))
    i=tab.intensity_configs.sel(regular_cells=held); mean=corr.sel(regular_cells=held); err=i.std('config')/np.sqrt(i.sizes['config'])
    for b in tab.br_fraction.values:
        for n in range(max(held+2,8),42,2):
            s=(n-held)/n
            pred=m.site_intensities(float(b),s,n); meas=mean.sel(br_fraction=b,thickness_cells=n).values; e=err.sel(br_fraction=b,thickness_cells=n).values
            ib=int(np.argmin(np.abs(m.b-b))); i_s=int(np.argmin(np.abs(m.s-s)))
            pe=np.array([np.interp(n, m.n, m.sites_rel_err[ib,i_s,:,c]) for c in range(3)])
            res.append((held,b,n,*(pred/meas-1),*(e/meas),*pe))
r=np.array(res)
for held in sorted(set(r[:,0])):
    q=r[r[:,0]==held]
    print(f"held k={int(held)}: rel dev rms {np.sqrt(np.mean(q[:,3:6]**2,axis=0)).round(4)} max {np.abs(q[:,3:6]).max(axis=0).round(4)}  table FP rel err rms {np.sqrt(np.mean(q[:,6:9]**2,axis=0)).round(4)}")
excess=np.sqrt(np.maximum(np.mean(r[:,3:6]**2,axis=0)-np.mean(r[:,6:9]**2,axis=0)-np.mean(r[:,9:12]**2,axis=0),0))
print('overall rms dev', np.sqrt(np.mean(r[:,3:6]**2,axis=0)).round(4), 'held-run FP', np.sqrt(np.mean(r[:,6:9]**2,axis=0)).round(4),
      'model FP', np.sqrt(np.mean(r[:,9:12]**2,axis=0)).round(4), 'excess (interpolation)', excess.round(4))
# b leave-one-out: the model without one Br fraction against that fraction's raw regular run (k = max)
bs=list(tab.br_fraction.values)
raw=corr.sel(regular_cells=max(ks))
for held in [0.25,0.5,0.75]:
    for deg in (1,2):
        m=RegistryModel(tab.sel(br_fraction=[b for b in bs if b!=held]), b_degree=deg)
        ib=np.argmin(abs(m.b-held))
        cells=tab.thickness_cells.values
        pred=np.array([[np.interp(n, m.n, m.sites[ib,0,:,c]) for c in range(3)] for n in cells])
        d=pred/raw.sel(br_fraction=held).values-1
        print(f"b held {held} degree {deg}: rel dev rms {np.sqrt(np.mean(d**2,axis=0)).round(4)} max {np.abs(d).max(axis=0).round(4)}")
# what the table says (docs/stem_zcontrast.md): regular-column contrasts and the non-additivity
reg = tab.intensity_configs.sel(regular_cells=max(ks)).mean('config')
for b in (0.0, 0.5, 1.0):
    r = reg.sel(br_fraction=b)
    print(f"b = {b:g}: Cs/PbX at 16 cells {float(r.sel(thickness_cells=16, site='Cs-site') / r.sel(thickness_cells=16, site='PbX-site')):.3f}; "
          f"X/PbX at 13 / 38 cells {float(r.sel(thickness_cells=13, site='X') / r.sel(thickness_cells=13, site='PbX-site')):.3f} / "
          f"{float(r.sel(thickness_cells=38, site='X') / r.sel(thickness_cells=38, site='PbX-site')):.3f}")
i0 = tab.intensity_configs.sel(br_fraction=0.0).mean('config')
add = (reg.sel(br_fraction=0.0, thickness_cells=15, site='Cs-site') + reg.sel(br_fraction=0.0, thickness_cells=30, site='PbX-site')
       - reg.sel(br_fraction=0.0, thickness_cells=15, site='PbX-site'))
print(f"CsPbI3, 15 Cs over 15 PbX cells: Cs-site / sum of regular columns - 1 = "
      f"{float(i0.sel(regular_cells=15, thickness_cells=30, site='Cs-site') / add - 1):+.3f}")
