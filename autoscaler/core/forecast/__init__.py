"""Demand forecasters (last value, EWMA, Holt-Winters) and their online selection by recent error."""
